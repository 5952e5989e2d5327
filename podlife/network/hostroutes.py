"""Keep pod and service addresses off the real network with ``unreachable`` routes.

Design
------
Pod IPs (``10.244.0.0/16``) and ClusterIPs (``10.96.0.0/12``) exist only
inside podlife. If the host routed them out of its default gateway, a pod's
traffic (or a packet for a pod that does not exist yet) could leak onto the
LAN, or reach a real machine that happens to use those addresses. So before
any pod gets an address, ``podlife up`` (when it is allowed to) adds one route
per range to the host's main routing table::

    ip route add unreachable 10.244.0.0/16

More specific routes that podlife adds later for its own pods (for example a
/32 to a veth) still take priority. Anything else in the range gets
``EHOSTUNREACH`` at once. On stop, podlife removes the routes it added.

Several podlife servers can share one network namespace, for example tests
run in parallel with pytest-xdist. Removing the route when the first one
stops would expose the others. So the route is *reference counted* across
processes:

* A state file per network namespace,
  ``<state_dir>/routes/<dev>-<inode>.json``, maps each CIDR to its *holders*.
  A holder is ``{pid, start, pidns, token}``. ``start`` is the process start
  time from ``/proc/<pid>/stat``, which guards against pid reuse. ``token``
  tells apart two guards in the same process. The namespace is named by the
  device and inode of its nsfs file (``/proc/self/ns/net`` or
  ``/run/netns/<name>``), so the key changes when a namespace is deleted and
  created again under the same name.
* Every read-modify-write of a state file, together with the ``ip route``
  calls it decides on, runs under an exclusive ``fcntl.flock`` on
  ``<state_dir>/routes.lock``. That lock file is never deleted, so the usual
  "unlink a lock file someone is waiting on" race cannot happen. State files
  are replaced atomically (write to a temporary file, then ``os.replace``).
* ``install`` adds the route and records itself when no route for the CIDR
  exists. It *joins* (adds itself as a holder) when the state file says
  podlife already added an identical ``unreachable`` route. ``remove`` drops
  its holder entry and deletes the route only when no live holder is left.
* It never touches a route it did not record. An identical ``unreachable``
  route that an admin added is left alone: it already protects the range. A
  *different* route for the CIDR (a real route, ``blackhole``, ...) is left
  alone with a warning, because replacing it could break the host.
* When a podlife process crashed, its holder entry is stale. Holders whose
  process is gone (same pid namespace, and the pid is missing or has another
  start time) are pruned on the next ``install`` or ``remove``. Until then
  the route stays, which errs on the safe side. If a crashed instance left
  the last holder, the next instance adopts the route.

Managing routes needs ``CAP_NET_ADMIN`` and the ``ip`` tool (:class:`RouteTools`,
found for this process unless a guard is given its own). Without them
``install`` logs why and does nothing (returns ``[]``), so unprivileged
development runs still work. With them, a failed ``ip route add`` raises
:class:`HostRouteError` after rolling back, because running without the guard
would be unsafe. The ``netns`` argument runs every command as ``ip -n NS``;
the tests use it to work in a throwaway namespace instead of the host's.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/run/podlife")
NETNS_RUN_DIR = Path("/run/netns")
ROUTE_TYPE = "unreachable"
CAP_NET_ADMIN = 12
_IP_FALLBACKS = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
_DEFAULT_METRICS = {None, 0, 1024}  # IPv4 has no metric by default, IPv6 uses 1024


class HostRouteError(RuntimeError):
    """An ``ip`` command failed while routes could be managed."""


# -- capability checks ---------------------------------------------------------


def _ip_binary() -> str | None:
    found = shutil.which("ip")
    if found:
        return found
    return next((path for path in _IP_FALLBACKS if os.access(path, os.X_OK)), None)


def _has_net_admin() -> bool:
    """True if this process has CAP_NET_ADMIN in its effective set (falls back to euid 0)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


@dataclass(frozen=True)
class RouteTools:
    """What managing routes takes: the ``ip`` tool (None: not found) and CAP_NET_ADMIN.

    A guard finds them for this process (:meth:`detect`) when it installs, unless it is
    given them: tests pass an ``ip`` of their own (one that fails on cue, one that must
    not run) or a process without the capability.
    """

    ip: str | None
    net_admin: bool

    @classmethod
    def detect(cls) -> RouteTools:
        return cls(_ip_binary(), _has_net_admin())


def can_manage_routes(tools: RouteTools | None = None) -> bool:
    """True if this process (or one with ``tools``) may add routes: ``ip`` exists and it has CAP_NET_ADMIN."""
    tools = tools or RouteTools.detect()
    return tools.ip is not None and tools.net_admin


# -- holders -------------------------------------------------------------------


def _proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The comm field may contain spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22, starttime


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class _Holder:
    pid: int
    start: int | None
    pidns: str
    token: str

    @classmethod
    def current(cls) -> _Holder:
        pid = os.getpid()
        return cls(pid, _proc_start_time(pid), _pid_namespace(), uuid.uuid4().hex)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Holder:
        return cls(int(data["pid"]), data.get("start"), str(data.get("pidns", "")), str(data["token"]))

    def alive(self) -> bool:
        """False only when we can tell that the process is gone."""
        if self.pidns != _pid_namespace():
            return True  # another pid namespace: cannot check, so assume alive
        return _proc_start_time(self.pid) == self.start


# -- ip route wrapper ----------------------------------------------------------


class _IpRoute:
    """Runs ``ip route`` in the current or in a named network namespace."""

    def __init__(self, ip: str, netns: str | None) -> None:
        self.ip = ip
        self.netns = netns

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.ip, *(["-n", self.netns] if self.netns else []), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    @staticmethod
    def _family(cidr: str) -> str:
        return "-6" if ipaddress.ip_network(cidr).version == 6 else "-4"

    def routes(self, cidr: str) -> list[dict[str, Any]]:
        """Main-table routes whose destination is exactly ``cidr``."""
        proc = self._run("-j", self._family(cidr), "route", "show", "exact", cidr)
        if proc.returncode != 0:
            raise HostRouteError(f"ip route show exact {cidr}: {proc.stderr.strip()}")
        return list(json.loads(proc.stdout or "[]"))

    def add_unreachable(self, cidr: str) -> None:
        proc = self._run(self._family(cidr), "route", "add", ROUTE_TYPE, cidr)
        if proc.returncode != 0:
            raise HostRouteError(f"ip route add {ROUTE_TYPE} {cidr}: {proc.stderr.strip()}")

    def delete_unreachable(self, cidr: str) -> None:
        # Naming the type means the kernel only deletes an unreachable route.
        proc = self._run(self._family(cidr), "route", "del", ROUTE_TYPE, cidr)
        if proc.returncode != 0:
            raise HostRouteError(f"ip route del {ROUTE_TYPE} {cidr}: {proc.stderr.strip()}")


def _is_our_kind(route: dict[str, Any], cidr: str) -> bool:
    """True if ``route`` is a plain ``unreachable <cidr>`` in the main table."""
    dst = route.get("dst", "")
    if dst == "default":
        dst = "::/0" if ":" in cidr else "0.0.0.0/0"
    try:
        same_dst = ipaddress.ip_network(dst, strict=False) == ipaddress.ip_network(cidr)
    except ValueError:
        return False
    return same_dst and route.get("type") == ROUTE_TYPE and route.get("metric") in _DEFAULT_METRICS


def _classify(routes: list[dict[str, Any]], cidr: str) -> str:
    """'absent', 'identical' (our kind of route exists) or 'foreign'."""
    if not routes:
        return "absent"
    return "identical" if any(_is_our_kind(r, cidr) for r in routes) else "foreign"


def _netns_key(netns: str | None) -> str:
    path = NETNS_RUN_DIR / netns if netns else Path("/proc/self/ns/net")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise HostRouteError(f"network namespace {netns or 'of this process'} not found: {exc}") from exc
    return f"{st.st_dev}-{st.st_ino}"


# -- shared state file ---------------------------------------------------------


class _State:
    """Holders per CIDR for one network namespace (only used under the lock)."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self.routes: dict[str, list[_Holder]] = {}

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.routes = {
                cidr: [_Holder.from_json(h) for h in entry.get("holders", [])]
                for cidr, entry in data.get("routes", {}).items()
            }
        except FileNotFoundError:
            self.routes = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("host routes: unreadable state %s (%s); starting empty", self.path, exc)
            self.routes = {}

    def prune(self) -> None:
        for cidr, holders in self.routes.items():
            self.routes[cidr] = [h for h in holders if h.alive()]

    def save(self) -> None:
        if not self.routes:
            self.path.unlink(missing_ok=True)
            return
        data = {
            "netns": self.label,
            "routes": {cidr: {"holders": [asdict(h) for h in hs]} for cidr, hs in self.routes.items()},
        }
        tmp = self.path.with_suffix(f".tmp.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@contextmanager
def _locked_state(state_dir: Path, key: str, label: str) -> Iterator[_State]:
    routes_dir = state_dir / "routes"
    routes_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "routes.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = _State(routes_dir / f"{key}.json", label)
            state.load()
            state.prune()
            try:
                yield state
            finally:  # callers keep the state consistent even when they raise
                state.save()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the guard -------------------------------------------------------------------


class HostRouteGuard:
    """Installs shared, reference-counted ``unreachable`` routes; see the module docstring."""

    def __init__(
        self, cidrs: list[str], netns: str | None = None, *, state_dir: str | os.PathLike[str] | None = None,
        tools: RouteTools | None = None,
    ) -> None:
        self.cidrs = list(dict.fromkeys(str(ipaddress.ip_network(c, strict=True)) for c in cidrs))
        self.netns = netns
        self.state_dir = Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR
        self._tools = tools  # None: this process's, found on each install and remove
        self._holder = _Holder.current()
        self._held: list[str] = []
        self._key: str | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> list[str]:
        """CIDRs this guard holds a reference on (and will release in remove)."""
        return list(self._held)

    @property
    def _label(self) -> str:
        return self.netns or "host"

    def install(self) -> list[str]:
        """Add (or join) an ``unreachable`` route per CIDR; return the CIDRs now held.

        Returns ``[]`` and logs when routes cannot be managed (not root / no
        ``ip``). A second call on an installed guard returns what it holds.
        Raises :class:`HostRouteError` (after rolling back) if a route could
        not be added.
        """
        with self._mutex:
            if self._key is not None:
                return self.held
            tools = self._tools or RouteTools.detect()
            ip = tools.ip
            if ip is None or not tools.net_admin:
                why = "the ip tool is missing" if ip is None else "no CAP_NET_ADMIN (not root)"
                log.warning("host routes: %s; not guarding %s", why, ", ".join(self.cidrs))
                return []
            key = _netns_key(self.netns)
            iproute = _IpRoute(ip, self.netns)
            with _locked_state(self.state_dir, key, self._label) as state:
                try:
                    for cidr in self.cidrs:
                        if self._claim(iproute, state, cidr):
                            self._held.append(cidr)
                except HostRouteError:
                    self._release_all(iproute, state)
                    raise
            self._key = key
            return self.held

    def remove(self) -> None:
        """Release every CIDR this guard holds; delete routes nobody else holds.

        Idempotent and does not raise for ``ip`` failures (for example when
        the namespace is already gone), so it is safe in a ``finally``.
        """
        with self._mutex:
            if self._key is None:
                return
            ip = (self._tools or RouteTools.detect()).ip
            try:
                with _locked_state(self.state_dir, self._key, self._label) as state:
                    self._release_all(_IpRoute(ip or "ip", self.netns), state)
            except OSError as exc:
                log.warning("host routes: could not update state in %s: %s", self.state_dir, exc)
            self._held = []
            self._key = None

    def __enter__(self) -> HostRouteGuard:
        self.install()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    # -- internals ----------------------------------------------------------

    def _claim(self, iproute: _IpRoute, state: _State, cidr: str) -> bool:
        """Add or join the route for ``cidr``; True if this guard now holds it."""
        kind = _classify(iproute.routes(cidr), cidr)
        recorded = cidr in state.routes
        if kind == "foreign":
            log.warning("host routes: %s already has a different route in %s; leaving it alone", cidr, self._label)
            return False
        if kind == "identical" and not recorded:
            log.info("host routes: %s is already unreachable in %s (not added by podlife)", cidr, self._label)
            return False
        if kind == "absent":
            iproute.add_unreachable(cidr)
            log.info("host routes: added unreachable %s in %s", cidr, self._label)
        state.routes.setdefault(cidr, []).append(self._holder)
        return True

    def _release_all(self, iproute: _IpRoute, state: _State) -> None:
        for cidr in self._held:
            holders = [h for h in state.routes.get(cidr, []) if h.token != self._holder.token]
            if holders:
                state.routes[cidr] = holders
                continue
            state.routes.pop(cidr, None)
            self._delete_route(iproute, cidr)
        self._held = []

    def _delete_route(self, iproute: _IpRoute, cidr: str) -> None:
        try:
            if _classify(iproute.routes(cidr), cidr) == "identical":
                iproute.delete_unreachable(cidr)
                log.info("host routes: removed unreachable %s in %s", cidr, self._label)
        except HostRouteError as exc:
            log.warning("host routes: could not remove %s in %s: %s", cidr, self._label, exc)
