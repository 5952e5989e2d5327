"""A pod's ``/etc/resolv.conf``, as the kubelet composes it from ``dnsPolicy`` and ``dnsConfig``.

Design
------
Pure computation, apart from the runtime that writes the file
(:meth:`~podlife.kubelet.oci_pods.OCIPodRuntime.prepare_pod`): the pod, the kubelet's
DNS settings (``--cluster-dns``, ``--cluster-domain``: :class:`DNSSettings`) and the
text of the node's resolv.conf go in; a :class:`ResolvConf` and the warnings the
kubelet reports as ``DNSConfigForming`` come out. Nothing is resolved and nothing
is sent to a nameserver.

The rules are Kubernetes' (``pkg/kubelet/network/dns``):

* the policy: ``ClusterFirst`` (the default) uses the cluster's nameservers, the
  search path ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the node's
  search domains, and ``options ndots:5``; a ``hostNetwork`` pod with ``ClusterFirst``
  falls back to ``Default``, which ``ClusterFirstWithHostNet`` does not; without a
  cluster nameserver ``ClusterFirst`` falls back to ``Default`` too (with a warning);
  ``Default`` is the node's resolv.conf; ``None`` starts empty;
* ``dnsConfig`` is then merged in: its nameservers and searches appended (duplicates
  dropped), its options overriding the base's of the same name;
* the limits: at most 3 nameservers, 32 search domains, none longer than 253
  characters, the search line at most 2048 characters (cut from the end).

The file is written as a CRI runtime writes it: ``search``, ``nameserver`` lines,
``options``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DNSSettings", "ResolvConf", "parse_resolv_conf", "pod_dns_type", "pod_resolv_conf", "resolv_conf_text"]

Obj = dict[str, Any]

#: ``--cluster-dns`` default: the conventional kube-dns ClusterIP of the service range 10.96.0.0/12
DEFAULT_CLUSTER_DNS = "10.96.0.10"
#: ``--cluster-domain`` default
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
#: the node's resolv.conf (the kubelet's ``--resolv-conf`` default)
HOST_RESOLV_CONF = "/etc/resolv.conf"

#: Kubernetes' validation limits (``MaxDNSNameservers``, ``MaxDNSSearchPaths``, ``MaxDNSSearchListChars``)
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LIST_CHARS = 2048
#: longer search domains make some resolvers (glibc 2.28) abort, so the kubelet drops them
MAX_SEARCH_LENGTH = 253
#: the options of a ``ClusterFirst`` pod
CLUSTER_OPTIONS = ("ndots:5",)

#: what a pod's ``dnsPolicy`` comes to
DNS_NONE, DNS_CLUSTER, DNS_HOST = "None", "Cluster", "Host"


@dataclass(frozen=True)
class DNSSettings:
    """The kubelet's DNS settings: ``--cluster-dns`` (a list) and ``--cluster-domain``."""

    cluster_dns: tuple[str, ...] = (DEFAULT_CLUSTER_DNS,)
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN


@dataclass
class ResolvConf:
    """The parts of a resolv.conf the kubelet composes."""

    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    #: why something was left out (the kubelet's ``DNSConfigForming`` warnings)
    warnings: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The file's text, in the order CRI runtimes write it."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {server}" for server in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def _unique(items: Iterable[str]) -> list[str]:
    """Keep the first of each, in order (the kubelet's ``omitDuplicates``)."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _merge_options(base: Iterable[str], extra: Iterable[tuple[str, str | None]]) -> list[str]:
    """Options by name, a later one replacing an earlier one's value in its place."""
    merged: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        merged[name] = value
    for option_name, option_value in extra:
        merged[option_name] = option_value or ""
    return [f"{name}:{value}" if value else name for name, value in merged.items()]


def parse_resolv_conf(text: str) -> ResolvConf:
    """The node's resolv.conf: nameservers, the last ``search`` line, options (later ones win)."""
    conf = ResolvConf()
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        keyword, values = fields[0], fields[1:]
        if keyword == "nameserver" and values:
            conf.nameservers.append(values[0])
        elif keyword == "search":
            # a trailing dot names the same domain; "." alone adds nothing
            conf.searches = [s.removesuffix(".") for s in values if s != "."]
        elif keyword == "options":
            options += values
    conf.options = _merge_options(options, ())
    return conf


def pod_dns_type(pod: Obj) -> str:
    """What ``dnsPolicy`` means for this pod: :data:`DNS_NONE`, :data:`DNS_CLUSTER` or :data:`DNS_HOST`."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return DNS_NONE
    if policy == "ClusterFirstWithHostNet":
        return DNS_CLUSTER
    if policy == "Default" or spec.get("hostNetwork"):
        return DNS_HOST
    return DNS_CLUSTER  # ClusterFirst (and anything the API server should have refused)


def _cluster_searches(namespace: str, domain: str, host_searches: Sequence[str]) -> list[str]:
    if not domain:
        return list(host_searches)
    return _unique([f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host_searches])


def _fit_searches(searches: list[str]) -> tuple[list[str], bool]:
    """Searches within the limits, and whether any were dropped (the kubelet's ``formDNSSearchFitsLimits``)."""
    cut = len(searches) > MAX_SEARCH_PATHS
    kept = [s for s in searches[:MAX_SEARCH_PATHS] if len(s) <= MAX_SEARCH_LENGTH]
    cut = cut or len(kept) < min(len(searches), MAX_SEARCH_PATHS)
    while kept and len(" ".join(kept)) > MAX_SEARCH_LIST_CHARS:
        kept.pop()
        cut = True
    return kept, cut


def _base(pod: Obj, settings: DNSSettings, host: ResolvConf) -> ResolvConf:
    kind = pod_dns_type(pod)
    if kind == DNS_NONE:
        return ResolvConf()
    if kind == DNS_CLUSTER and settings.cluster_dns:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        return ResolvConf(nameservers=list(settings.cluster_dns),
                          searches=_cluster_searches(namespace, settings.cluster_domain, host.searches),
                          options=list(CLUSTER_OPTIONS))
    base = ResolvConf(list(host.nameservers), list(host.searches), list(host.options))
    if kind == DNS_CLUSTER:
        base.warnings.append('kubelet does not have ClusterDNS IP configured and cannot create Pod using '
                             '"ClusterFirst" policy. Falling back to "Default" policy.')
    return base


def pod_resolv_conf(pod: Obj, settings: DNSSettings, host_text: str) -> ResolvConf:
    """The pod's resolv.conf: the policy's base, ``dnsConfig`` merged in, cut to the limits."""
    conf = _base(pod, settings, parse_resolv_conf(host_text))
    dns_config = (pod.get("spec") or {}).get("dnsConfig") or {}
    if dns_config:
        conf.nameservers = _unique([*conf.nameservers, *(str(s) for s in dns_config.get("nameservers") or [])])
        conf.searches = _unique([*conf.searches, *(str(s) for s in dns_config.get("searches") or [])])
        extra = [(str(o.get("name", "")), None if o.get("value") is None else str(o["value"]))
                 for o in dns_config.get("options") or [] if isinstance(o, dict) and o.get("name")]
        conf.options = _merge_options(conf.options, extra)
    if len(conf.nameservers) > MAX_NAMESERVERS:
        conf.nameservers = conf.nameservers[:MAX_NAMESERVERS]
        conf.warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, the applied "
                             "nameserver line is: " + " ".join(conf.nameservers))
    conf.searches, cut = _fit_searches(conf.searches)
    if cut:
        conf.warnings.append("Search Line limits were exceeded, some search paths have been omitted, the applied "
                             "search line is: " + " ".join(conf.searches))
    return conf


def resolv_conf_text(pod: Obj, settings: DNSSettings, host_text: str) -> str:
    """The text of the pod's ``/etc/resolv.conf``."""
    return pod_resolv_conf(pod, settings, host_text).render()
