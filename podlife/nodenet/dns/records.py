"""The cluster's DNS zone, built from Services, EndpointSlices and Pods, and the answers it gives.

Design
------
Pure: no sockets, no API. The server (:mod:`podlife.nodenet.dns.server`) feeds the
objects its informers see into one :class:`Zone` and hands every query to
:func:`answer`; nothing here waits or sends.

The zone is kept *incrementally*, one "source" at a time. A Service's records (its A/AAAA,
SRV, CNAME, PTR and, when headless, those of its endpoints) depend only on that Service,
its EndpointSlices (label ``kubernetes.io/service-name``) and the Pods of its namespace
whose ``spec.subdomain`` names it; so a change to any of those recomputes that one
Service (:func:`service_records`, a pure function) and swaps its records in the name index.
At 1000 Services and 10000 Pods a change costs the records of one Service, never a
rebuild. Pod records (``a-b-c-d.<ns>.pod.<zone>``) are answered from an index of the
pods' IPs per namespace (CoreDNS's ``pods verified``: only an IP some pod of that
namespace has), so a pod event costs a dict update.

The records follow Kubernetes' DNS specification (schema 1.1.0), with CoreDNS's choices
where it leaves room:

* ``<svc>.<ns>.svc.<zone>``: A/AAAA of the ClusterIP(s); for a headless Service one per
  ready endpoint address (all of them with ``publishNotReadyAddresses``); CNAME to
  ``spec.externalName`` for an ExternalName Service;
* ``<host>.<svc>.<ns>.svc.<zone>`` for each endpoint of a headless Service: the
  endpoint's ``hostname`` or, without one, its dashed address (``10-244-1-5``, the
  "unique, system-assigned identifier" the specification asks for); a Pod with
  ``hostname`` and ``subdomain: <svc>`` gets its name even when the EndpointSlice lacks it;
* ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV per named port: target the Service's
  name and its port for a ClusterIP Service, each ready endpoint's name and its port for a
  headless one (priority 0, weights splitting 100), the targets' addresses as additional
  records;
* PTR for each ClusterIP (to the Service's name) and for each headless endpoint with an
  explicit hostname (to ``<host>.<svc>.<ns>.svc.<zone>``);
* ``dns-version.<zone>`` TXT ``1.1.0``; SOA and NS at the apex;
* a name that exists without records of the asked type (AAAA of an IPv4-only Service,
  an empty non-terminal like ``<ns>.svc.<zone>``) is NODATA -- NOERROR, no answer, the
  SOA in the authority section; a name that does not exist is NXDOMAIN with the SOA. The
  SOA's TTL and minimum are the record TTL, 5 seconds (CoreDNS's default), so negative
  answers are cached no longer than positive ones;
* names compare case-insensitively; answers echo the question's spelling.

What is not ours (:meth:`Zone.owns` is false: outside ``<zone>`` and not a reverse name of an
address we know) is the server's to forward or refuse; :func:`answer` refuses it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel, DNSRecord

__all__ = ["DEFAULT_TTL", "Record", "SCHEMA_VERSION", "Zone", "answer", "normalize", "pod_dashed_name",
           "refuse", "service_records"]

Obj = dict[str, Any]

#: CoreDNS's kubernetes plugin answers with a TTL of 5 seconds unless told otherwise
DEFAULT_TTL = 5
#: the DNS specification's version this zone implements (``dns-version.<zone>`` TXT)
SCHEMA_VERSION = "1.1.0"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REVERSE_SUFFIXES = ("in-addr.arpa", "ip6.arpa")


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: a lowercase name without the trailing dot, a type, its data as text."""

    name: str
    rtype: str  # "A", "AAAA", "CNAME", "SRV", "PTR", "TXT"
    data: str  # address, target name, or "priority weight port target" for SRV


def normalize(name: str | DNSLabel) -> str:
    """A name as the zone keys it: lowercase, without the trailing dot."""
    return str(name).lower().rstrip(".")


def pod_dashed_name(ip: str) -> str:
    """``10.244.1.5`` -> ``10-244-1-5`` (and an IPv6 address's colons as dashes, as CoreDNS does)."""
    return ip.replace(".", "-").replace(":", "-")


def _family_type(ip: str) -> str | None:
    try:
        return "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
    except ValueError:
        return None


def _reverse(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


# -- what a Service contributes ---------------------------------------------------------------------------------

def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or [])
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if ip and ip != "None" and _family_type(ip)]


def _is_headless(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type", "ClusterIP") == "ClusterIP" and spec.get("clusterIP") == "None"


def _pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return [ip for ip in ips if _family_type(ip)]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    host: str  # the label under the Service's name (explicit hostname or dashed address)
    explicit: bool  # the host came from a hostname (gets a PTR)
    address: str


def _endpoints(svc: Obj, slices: Iterable[Obj], pods: Iterable[Obj]) -> tuple[list[_Endpoint], list[tuple[str, str, int]]]:
    """A headless Service's endpoints (deduplicated, in a stable order) and its slices' named ports."""
    all_too = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    seen: dict[tuple[str, str], _Endpoint] = {}
    ports: dict[tuple[str, str], int] = {}
    for sl in slices:
        if sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        for port in sl.get("ports") or []:
            if port.get("name") and port.get("port") is not None:
                ports.setdefault((port["name"], (port.get("protocol") or "TCP")), int(port["port"]))
        for ep in sl.get("endpoints") or []:
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is False and not all_too:  # nil means ready (the API's convention)
                continue
            hostname = (ep.get("hostname") or "").lower()
            for ip in ep.get("addresses") or []:
                if not _family_type(ip):
                    continue
                host = hostname or pod_dashed_name(ip)
                seen.setdefault((host, ip), _Endpoint(host, bool(hostname), ip))
    for pod in pods:  # a pod naming this Service as its subdomain gets <hostname>.<svc> even without the slice's help
        spec = pod.get("spec") or {}
        hostname = (spec.get("hostname") or "").lower()
        if not hostname or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if not (all_too or _pod_ready(pod)):
            continue
        for ip in _pod_ips(pod):
            seen.setdefault((hostname, ip), _Endpoint(hostname, True, ip))
    eps = sorted(seen.values(), key=lambda e: (e.host, e.address))
    return eps, [(name, proto, port) for (name, proto), port in sorted(ports.items())]


def _weights(n: int) -> list[int]:
    """SRV weights splitting 100 among ``n`` equal targets (at least 1 each)."""
    return [max(1, 100 // n)] * n if n else []


def service_records(svc: Obj, slices: Iterable[Obj], subdomain_pods: Iterable[Obj], domain: str) -> list[Record]:
    """Every record one Service contributes (pure; see the module docstring for the rules)."""
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    name = f"{meta.get('name', '')}.{meta.get('namespace', 'default')}.svc.{domain}".lower()
    out: list[Record] = []
    if spec.get("type") == "ExternalName":
        target = normalize(spec.get("externalName") or "")
        return [Record(name, "CNAME", target)] if target else []
    if _is_headless(svc):
        eps, ports = _endpoints(svc, slices, subdomain_pods)
        for ep in eps:
            rtype = _family_type(ep.address) or "A"
            out.append(Record(name, rtype, ep.address))
            out.append(Record(f"{ep.host}.{name}", rtype, ep.address))
            if ep.explicit:
                out.append(Record(_reverse(ep.address), "PTR", f"{ep.host}.{name}"))
        targets = sorted({ep.host for ep in eps})
        for port_name, proto, port in ports:
            srv = f"_{port_name}._{proto}.{name}".lower()
            for target, weight in zip(targets, _weights(len(targets)), strict=True):
                out.append(Record(srv, "SRV", f"0 {weight} {port} {target}.{name}"))
        return _dedup(out)
    ips = _cluster_ips(svc)
    for ip in ips:
        out.append(Record(name, _family_type(ip) or "A", ip))
        out.append(Record(_reverse(ip), "PTR", name))
    if ips:
        for port in spec.get("ports") or []:
            if port.get("name") and port.get("port") is not None:
                srv = f"_{port['name']}._{port.get('protocol') or 'TCP'}.{name}".lower()
                out.append(Record(srv, "SRV", f"0 100 {int(port['port'])} {name}"))
    return _dedup(out)


def _dedup(records: list[Record]) -> list[Record]:
    return list(dict.fromkeys(records))


# -- the zone ---------------------------------------------------------------------------------------------------

def _ancestors(name: str, stop: str) -> Iterator[str]:
    """The proper ancestors of ``name`` strictly below ``stop`` (``a.b.c.stop`` -> ``b.c.stop``, ``c.stop``)."""
    labels = name.split(".")
    for i in range(1, len(labels)):
        parent = ".".join(labels[i:])
        if parent == stop or not parent.endswith("." + stop):
            return
        yield parent


@dataclass
class Zone:
    """Cluster DNS data for one cluster domain, updated object by object (see the module docstring)."""

    domain: str = "cluster.local"
    ttl: int = DEFAULT_TTL
    #: name -> records at that name
    names: dict[str, list[Record]] = field(default_factory=dict)
    #: names that exist only as ancestors of others (empty non-terminals): how many names below each
    _below: Counter[str] = field(default_factory=Counter)
    #: source ("ns/name" of a Service) -> its records
    _sources: dict[str, list[Record]] = field(default_factory=dict)
    services: dict[str, Obj] = field(default_factory=dict)
    #: service key -> slice key -> slice
    slices: dict[str, dict[str, Obj]] = field(default_factory=dict)
    #: (namespace, subdomain) -> pod key -> pod (only pods with a hostname and a subdomain)
    subdomain_pods: dict[tuple[str, str], dict[str, Obj]] = field(default_factory=dict)
    #: namespace -> pod IP -> how many pods have it
    pod_ips: dict[str, Counter[str]] = field(default_factory=dict)
    _pod_index: dict[str, tuple[str, tuple[str, ...], tuple[str, str] | None]] = field(default_factory=dict)
    #: bumped on every change (the SOA's serial)
    serial: int = 1

    def __post_init__(self) -> None:
        self.domain = normalize(self.domain)

    # -- feeding it -----------------------------------------------------------------------------------------

    def set_service(self, svc: Obj) -> str:
        key = _key(svc)
        self.services[key] = svc
        return key

    def delete_service(self, svc: Obj) -> str:
        key = _key(svc)
        self.services.pop(key, None)
        return key

    def set_slice(self, sl: Obj, old: Obj | None = None) -> set[str]:
        """Record an EndpointSlice; the Services whose records it may change (its old owner too)."""
        touched = set()
        if old is not None:
            touched |= self.delete_slice(old)
        owner = _slice_owner(sl)
        if owner is not None:
            self.slices.setdefault(owner, {})[_key(sl)] = sl
            touched.add(owner)
        return touched

    def delete_slice(self, sl: Obj) -> set[str]:
        owner = _slice_owner(sl)
        if owner is None:
            return set()
        group = self.slices.get(owner)
        if group is not None:
            group.pop(_key(sl), None)
            if not group:
                del self.slices[owner]
        return {owner}

    def set_pod(self, pod: Obj) -> set[str]:
        """Record a Pod; the Services whose records it may change (those it names as subdomain, before and now)."""
        key = _key(pod)
        touched = self.delete_pod(pod)
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        ns = meta.get("namespace") or "default"
        ips = tuple(_pod_ips(pod))
        sub = None
        if spec.get("hostname") and spec.get("subdomain"):
            sub = (ns, str(spec["subdomain"]).lower())
            self.subdomain_pods.setdefault(sub, {})[key] = pod
            touched.add(f"{sub[0]}/{sub[1]}")
        if ips:
            counts = self.pod_ips.setdefault(ns, Counter())
            counts.update(ips)
        self._pod_index[key] = (ns, ips, sub)
        self.serial += 1
        return touched

    def delete_pod(self, pod: Obj) -> set[str]:
        key = _key(pod)
        entry = self._pod_index.pop(key, None)
        if entry is None:
            return set()
        ns, ips, sub = entry
        counts = self.pod_ips.get(ns)
        if counts is not None:
            counts.subtract(ips)
            for ip in ips:
                if counts[ip] <= 0:
                    del counts[ip]
            if not counts:
                del self.pod_ips[ns]
        touched = set()
        if sub is not None:
            group = self.subdomain_pods.get(sub)
            if group is not None:
                group.pop(key, None)
                if not group:
                    del self.subdomain_pods[sub]
            touched.add(f"{sub[0]}/{sub[1]}")
        self.serial += 1
        return touched

    def refresh(self, keys: Iterable[str]) -> None:
        """Recompute the records of the Services ``keys`` ("ns/name") from what the zone holds now."""
        for key in keys:
            svc = self.services.get(key)
            if svc is None:
                self._replace(key, [])
                continue
            ns, _, name = key.partition("/")
            records = service_records(svc, (self.slices.get(key) or {}).values(),
                                      (self.subdomain_pods.get((ns, name.lower())) or {}).values(), self.domain)
            self._replace(key, records)

    def _replace(self, source: str, records: list[Record]) -> None:
        old = self._sources.pop(source, [])
        if old == records:
            if records:
                self._sources[source] = records
            return
        for rec in old:
            at = self.names.get(rec.name)
            if at is None:
                continue
            try:
                at.remove(rec)
            except ValueError:
                continue
            if not at:
                del self.names[rec.name]
                self._count_ancestors(rec.name, -1)
        for rec in records:
            at = self.names.get(rec.name)
            if at is None:
                self.names[rec.name] = [rec]
                self._count_ancestors(rec.name, +1)
            else:
                at.append(rec)
        if records:
            self._sources[source] = records
        self.serial += 1

    def _count_ancestors(self, name: str, delta: int) -> None:
        stop = self.domain if _in(name, self.domain) else _reverse_suffix(name)
        if stop is None:
            return
        for parent in _ancestors(name, stop):
            self._below[parent] += delta
            if self._below[parent] <= 0:
                del self._below[parent]

    # -- reading it -----------------------------------------------------------------------------------------

    def owns(self, qname: str) -> bool:
        """Whether ``qname`` (normalized) is this zone's to answer: inside the domain, or a reverse name we know."""
        if _in(qname, self.domain):
            return True
        return _reverse_suffix(qname) is not None and (qname in self.names or qname in self._below)

    def lookup(self, qname: str) -> tuple[bool, list[Record]]:
        """(whether the name exists, its records)."""
        recs = self.names.get(qname)
        if recs:
            return True, list(recs)
        d = self.domain
        if qname in (d, f"svc.{d}", f"pod.{d}") or qname in self._below:
            return True, []
        if qname == f"dns-version.{d}":
            return True, [Record(qname, "TXT", SCHEMA_VERSION)]
        svc_part = f".svc.{d}"
        if qname.endswith(svc_part) and self._is_service(qname[: -len(svc_part)]):
            return True, []  # a Service without records (headless with no ready endpoint): NODATA, not NXDOMAIN
        pod_part = f".pod.{d}"
        if qname.endswith(pod_part):
            rest = qname[: -len(pod_part)]
            labels = rest.split(".")
            if len(labels) == 1:
                return labels[0] in self.pod_ips, []
            if len(labels) == 2:
                ip = _undash(labels[0])
                if ip is not None and ip in (self.pod_ips.get(labels[1]) or ()):
                    return True, [Record(qname, _family_type(ip) or "A", ip)]
        return False, []

    def _is_service(self, rest: str) -> bool:
        """Whether ``<name>.<ns>`` (lowercase) is a Service the zone knows."""
        labels = rest.split(".")
        if len(labels) != 2:
            return False
        return f"{labels[1]}/{labels[0]}" in self.services  # Service and namespace names are lowercase DNS labels

    def soa_name(self, qname: str) -> str:
        return self.domain if _in(qname, self.domain) else (_reverse_suffix(qname) or self.domain)


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _slice_owner(sl: Obj) -> str | None:
    meta = sl.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or 'default'}/{svc}" if svc else None


def _in(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def _reverse_suffix(name: str) -> str | None:
    for suffix in REVERSE_SUFFIXES:
        if _in(name, suffix):
            return suffix
    return None


def _undash(label: str) -> str | None:
    """``10-244-1-5`` -> ``10.244.1.5`` (IPv4 only: an IPv6 address's dashes are ambiguous to undo here)."""
    candidate = label.replace("-", ".")
    try:
        return str(ipaddress.IPv4Address(candidate))
    except ValueError:
        pass
    try:
        return str(ipaddress.IPv6Address(label.replace("-", ":")))
    except ValueError:
        return None


# -- answering --------------------------------------------------------------------------------------------------

_RDATA = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "PTR": PTR}


def _rr(rec: Record, qname: DNSLabel | str, ttl: int) -> RR:
    if rec.rtype == "SRV":
        prio, weight, port, target = rec.data.split(" ", 3)
        rdata: Any = SRV(priority=int(prio), weight=int(weight), port=int(port), target=target + ".")
    elif rec.rtype == "TXT":
        rdata = TXT(rec.data)
    elif rec.rtype in ("CNAME", "PTR"):
        rdata = _RDATA[rec.rtype](rec.data + ".")
    else:
        rdata = _RDATA[rec.rtype](rec.data)
    return RR(qname, getattr(QTYPE, rec.rtype), rdata=rdata, ttl=ttl)


def _soa(zone: Zone, apex: str) -> RR:
    return RR(apex + ".", QTYPE.SOA, ttl=zone.ttl,
              rdata=SOA(f"ns.dns.{zone.domain}.", f"hostmaster.{zone.domain}.",
                        (zone.serial % 2**32, 7200, 1800, 86400, zone.ttl)))


def refuse(request: DNSRecord, rcode: int = RCODE.REFUSED) -> DNSRecord:
    """An empty reply to ``request`` with ``rcode`` (REFUSED unless told)."""
    reply = request.reply()
    reply.header.aa = 0
    reply.header.rcode = rcode
    return reply


def answer(zone: Zone, request: DNSRecord) -> DNSRecord:
    """The zone's reply to ``request`` (one question; REFUSED for a name that is not the zone's)."""
    if request.header.opcode != 0:
        return refuse(request, RCODE.NOTIMP)
    if len(request.questions) != 1:
        return refuse(request, RCODE.FORMERR)
    q = request.q
    qname = normalize(q.qname)
    if not zone.owns(qname):
        return refuse(request)
    reply = request.reply()
    reply.header.aa = 1
    qtype = QTYPE.get(q.qtype)
    exists, recs = zone.lookup(qname)
    apex = zone.soa_name(qname)
    if qname == zone.domain and qtype in ("SOA", "NS", "ANY"):
        reply.add_answer(_soa(zone, apex) if qtype != "NS" else
                         RR(q.qname, QTYPE.NS, rdata=NS(f"ns.dns.{zone.domain}."), ttl=zone.ttl))
        return reply
    if not exists:
        reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(_soa(zone, apex))
        return reply
    cnames = [r for r in recs if r.rtype == "CNAME"]
    picked = cnames if cnames and qtype != "CNAME" else [r for r in recs if qtype == "ANY" or r.rtype == qtype]
    if not picked:
        reply.add_auth(_soa(zone, apex))  # NODATA
        return reply
    for rec in picked:
        reply.add_answer(_rr(rec, q.qname, zone.ttl))
    for rec in _additional(zone, picked):
        reply.add_ar(_rr(rec, rec.name + ".", zone.ttl))
    return reply


def _additional(zone: Zone, picked: list[Record]) -> list[Record]:
    """The addresses of SRV targets (as CoreDNS adds them), when the zone has them."""
    out: list[Record] = []
    for rec in picked:
        if rec.rtype == "SRV":
            target = rec.data.split(" ", 3)[3]
            out.extend(r for r in zone.names.get(target, ()) if r.rtype in ("A", "AAAA"))
    return list(dict.fromkeys(out))

