"""The CNI 1.0 protocol of ``podlife-cni``: environment, network configuration, results and errors.

Design
------
A CNI plugin is a program the container runtime runs once per operation: the
operation and the container's coordinates arrive in ``CNI_*`` environment variables,
the network configuration as JSON on stdin, and the answer leaves as JSON on stdout
(a result, a version document, or an error object with exit status 1). This module
is that contract and nothing else -- pure functions from the inputs to
:class:`Invocation` and :class:`NetConf`, and from what was plugged to the result
document -- so :mod:`.main` only wires it to :mod:`.plumbing` and :mod:`.api`, and the
tests can check the shapes without a namespace.

Error codes are the specification's well-known ones (1 incompatible version, 3
container unknown, 4 invalid environment variables, 6 undecodable content, 7 invalid
network configuration, 11 try again later) plus podlife's own from 100 up
(:data:`API_FAILED`, :data:`PLUMBING_FAILED`, :data:`CHECK_FAILED`).

Results are rendered in the version the configuration asks for: 1.0.0 as the
specification writes it; 0.3.x/0.4.0 with the per-address ``version`` field those
versions require.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
#: namespace and interface names in the configuration (they end up on ip command lines)
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")

# the specification's well-known error codes
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
CONTAINER_UNKNOWN = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
# podlife-cni's own (the specification leaves 100 and up to plugins)
INTERNAL_ERROR = 100
API_FAILED = 101
PLUMBING_FAILED = 102
CHECK_FAILED = 103


class CniError(Exception):
    """A failed operation, as the specification's error object (``code``, ``msg``, ``details``)."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def document(self, cni_version: str = SPEC_VERSION) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc


@dataclass(frozen=True)
class Invocation:
    """What the runtime said in the environment."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = "eth0"
    args: Mapping[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def pod_namespace(self) -> str:
        return self.args.get("K8S_POD_NAMESPACE", "")

    @property
    def pod_name(self) -> str:
        return self.args.get("K8S_POD_NAME", "")

    @property
    def pod_uid(self) -> str:
        return self.args.get("K8S_POD_UID", "")


@dataclass(frozen=True)
class NetConf:
    """The network configuration on stdin (podlife's keys besides the specification's)."""

    cni_version: str
    name: str
    type: str
    kubeconfig: str = ""
    node_name: str = ""
    node_netns: str = ""
    fabric_netns: str = ""
    fabric_link: str = ""
    uplink_address: str = ""
    mtu: int = 1500
    prev_result: Mapping[str, Any] | None = None


def parse_cni_args(text: str) -> dict[str, str]:
    """``K=V;K=V`` (``CNI_ARGS``) as a dict; pieces without ``=`` are an invalid environment."""
    pairs: dict[str, str] = {}
    for piece in text.split(";"):
        if not piece.strip():
            continue
        key, sep, value = piece.partition("=")
        if not sep or not key.strip():
            raise CniError(INVALID_ENVIRONMENT, "invalid CNI_ARGS", f"{piece!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def parse_invocation(env: Mapping[str, str]) -> Invocation:
    """The invocation the environment describes; :class:`CniError` (code 4) names what is missing."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, "invalid CNI_COMMAND",
                       f"CNI_COMMAND={command!r}; expected one of {', '.join(COMMANDS)}")
    inv = Invocation(command, env.get("CNI_CONTAINERID", ""), env.get("CNI_NETNS", ""), env.get("CNI_IFNAME", ""),
                     parse_cni_args(env.get("CNI_ARGS", "")), env.get("CNI_PATH", ""))
    missing = _missing_environment(inv)
    if missing:
        raise CniError(INVALID_ENVIRONMENT, "missing environment variables", ", ".join(missing))
    return inv


def _missing_environment(inv: Invocation) -> list[str]:
    """Required variables per command (1.0: CNI_NETNS may be empty on DEL)."""
    if inv.command == "VERSION":
        return []
    missing = [name for name, value in (("CNI_CONTAINERID", inv.container_id), ("CNI_IFNAME", inv.ifname)) if not value]
    if inv.command in ("ADD", "CHECK") and not inv.netns:
        missing.append("CNI_NETNS")
    if not inv.pod_uid:
        missing.append("CNI_ARGS K8S_POD_UID")
    if inv.command in ("ADD", "CHECK") and not (inv.pod_namespace and inv.pod_name):
        missing.append("CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME")
    if inv.ifname and (len(inv.ifname) > 15 or not _NAME_RE.match(inv.ifname)):
        missing.append(f"CNI_IFNAME ({inv.ifname!r} is not an interface name)")
    return missing


def decode_config(raw: bytes) -> dict[str, Any]:
    """The stdin document as a JSON object (code 6 if it is not one)."""
    try:
        doc = json.loads(raw or b"{}")
    except ValueError as exc:
        raise CniError(DECODING_FAILURE, "network configuration is not JSON", str(exc)) from None
    if not isinstance(doc, dict):
        raise CniError(DECODING_FAILURE, "network configuration is not a JSON object")
    return doc


def check_version(doc: Mapping[str, Any]) -> str:
    """The configuration's ``cniVersion``, if this plugin speaks it (code 1 otherwise)."""
    version = doc.get("cniVersion") or ""
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}")
    return str(version)


def parse_netconf(doc: Mapping[str, Any], command: str) -> NetConf:
    """The configuration with podlife's keys checked (code 7 names the bad key)."""
    version = check_version(doc)

    def text(key: str) -> str:
        value = doc.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise CniError(INVALID_CONFIG, "invalid network configuration", f"{key} must be a string")
        return value

    conf = NetConf(version, text("name"), text("type"), text("kubeconfig"), text("nodeName"), text("nodeNetns"),
                   text("fabricNetns"), text("fabricLink"), text("uplinkAddress"), _mtu(doc.get("mtu", 1500)),
                   _prev_result(doc.get("prevResult")))
    required = ["name", "nodeNetns"] + (["kubeconfig"] if command == "ADD" else [])
    if conf.fabric_netns:
        required += ["fabricLink", "uplinkAddress"]
    missing = [key for key in required if not text(key)]
    if missing:
        raise CniError(INVALID_CONFIG, "invalid network configuration", "missing " + ", ".join(missing))
    for key, value in (("nodeNetns", conf.node_netns), ("fabricNetns", conf.fabric_netns), ("fabricLink", conf.fabric_link)):
        if value and (not _NAME_RE.match(value) or value in (".", "..")):
            raise CniError(INVALID_CONFIG, "invalid network configuration", f"{key} {value!r} is not a plain name")
    if conf.uplink_address:
        try:
            ipaddress.ip_address(conf.uplink_address)
        except ValueError:
            raise CniError(INVALID_CONFIG, "invalid network configuration", "uplinkAddress is not an IP address") from None
    return conf


def _mtu(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65535:
        raise CniError(INVALID_CONFIG, "invalid network configuration", "mtu must be an integer from 68 to 65535")
    return value


def _prev_result(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CniError(INVALID_CONFIG, "invalid network configuration", "prevResult must be an object")
    return value


def prev_result_address(prev: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(ip, ip/prefix, gateway) of the first IPv4 address of a previous result ("" when there is none)."""
    for entry in (prev or {}).get("ips") or []:
        if not isinstance(entry, dict):
            continue
        try:
            iface = ipaddress.ip_interface(str(entry.get("address")))
        except ValueError:
            continue
        if iface.version == 4:
            return str(iface.ip), str(iface.with_prefixlen), str(entry.get("gateway") or "")
    return "", "", ""


def prev_result_mac(prev: Mapping[str, Any] | None, ifname: str) -> str:
    """The MAC a previous result gave the sandbox interface ``ifname`` ("" when it is not there)."""
    for iface in (prev or {}).get("interfaces") or []:
        if isinstance(iface, dict) and iface.get("name") == ifname and iface.get("sandbox"):
            return str(iface.get("mac") or "")
    return ""


@dataclass(frozen=True)
class Plugged:
    """What ADD set up: the two veth ends and the pod's address."""

    host_ifname: str
    host_mac: str
    ifname: str
    mac: str
    sandbox: str
    address: str  # ip/prefix
    gateway: str


def render_result(plugged: Plugged, cni_version: str) -> dict[str, Any]:
    """The ADD result in ``cni_version``'s shape (interface 1 is the sandbox's)."""
    ip: dict[str, Any] = {"address": plugged.address, "interface": 1}
    if plugged.gateway:
        ip["gateway"] = plugged.gateway
    if cni_version != SPEC_VERSION:
        ip["version"] = "4"
    routes = [{"dst": "0.0.0.0/0", "gw": plugged.gateway}] if plugged.gateway else []
    return {
        "cniVersion": cni_version,
        "interfaces": [{"name": plugged.host_ifname, "mac": plugged.host_mac},
                       {"name": plugged.ifname, "mac": plugged.mac, "sandbox": plugged.sandbox}],
        "ips": [ip],
        "routes": routes,
        "dns": {},
    }


def version_document(cni_version: str = SPEC_VERSION) -> dict[str, Any]:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


__all__ = ["API_FAILED", "CHECK_FAILED", "COMMANDS", "CONTAINER_UNKNOWN", "DECODING_FAILURE", "INCOMPATIBLE_VERSION",
           "INTERNAL_ERROR", "INVALID_CONFIG", "INVALID_ENVIRONMENT", "IO_FAILURE", "PLUMBING_FAILED", "SPEC_VERSION",
           "SUPPORTED_VERSIONS", "TRY_AGAIN_LATER", "UNSUPPORTED_FIELD", "CniError", "Invocation", "NetConf", "Plugged",
           "check_version", "decode_config", "dumps", "parse_cni_args", "parse_invocation", "parse_netconf",
           "prev_result_address", "prev_result_mac", "render_result", "version_document"]
