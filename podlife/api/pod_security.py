"""Pod Security admission: the Pod Security Standards, enforced per namespace by its labels.

What: a namespace says how much a pod in it may do with the labels
``pod-security.kubernetes.io/enforce`` (refuse), ``warn`` (answer with a warning) and
``audit`` (noted), each ``privileged``, ``baseline`` or ``restricted``. A pod is checked
against the level at create; a violation of the ``enforce`` level is a 403 with
Kubernetes' message, naming every failed check and the containers it found::

    pods "priv" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false
    (container "c" must set securityContext.allowPrivilegeEscalation=false), ...

Why this shape: each check is a small pure function from a pod spec to a finding (or
None), registered under Kubernetes' check ID for a level; evaluation runs the checks of
the level in ID order, so the message lists them in the order Kubernetes does. The
checks follow the Pod Security Standards (kubernetes.io/docs/concepts/security/
pod-security-standards) at "latest".

Defaults: a namespace without labels gets the server's default level: ``podlife up``
enforces ``baseline`` (``--pod-security-default``, as a cluster admin sets it with an
AdmissionConfiguration), an API built otherwise Kubernetes' own default ``privileged``;
``kube-system`` is exempt.

As an admission plugin (:data:`PLUGIN`, ``PodSecurity`` in kube-apiserver's order): a
validating one on a pod's create, after the pod's validation and the validating halves
before it; its ``warn`` level's findings are the answer's ``Warning`` header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from .admission_plugin import CREATE_ONLY, AdmissionPlugin, Attributes

if TYPE_CHECKING:
    from .rest import ResourceREST

Obj = dict[str, Any]
NAME = "PodSecurity"

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn", "audit")
EXEMPT_NAMESPACES = frozenset({"kube-system"})

#: Capabilities a baseline pod may add (the container runtimes' default set).
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
RESTRICTED_VOLUME_TYPES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret")


@dataclass(frozen=True)
class Finding:
    """One failed check: its short reason and the detail Kubernetes prints in parentheses."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


Check = Callable[[Obj], Finding | None]


# --------------------------------------------------------------------------- helpers


def _containers(spec: Obj) -> list[Obj]:
    out: list[Obj] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(key) or [] if isinstance(c, dict)]
    return out


def _sc(obj: Obj) -> Obj:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _containers_phrase(names: list[str]) -> str:
    return f"container {_quoted(names)}" if len(names) == 1 else f"containers {_quoted(names)}"


# --------------------------------------------------------------------------- baseline checks


def check_host_namespaces(spec: Obj) -> Finding | None:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return Finding("host namespaces", ", ".join(used)) if used else None


def check_privileged(spec: Obj) -> Finding | None:
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("privileged") is True]
    return Finding("privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true") if bad else None


def check_capabilities_baseline(spec: Obj) -> Finding | None:
    bad: list[str] = []
    added: list[str] = []
    for c in _containers(spec):
        extra = [cap for cap in (_sc(c).get("capabilities") or {}).get("add") or [] if cap not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(c.get("name", ""))
            added += [cap for cap in extra if cap not in added]
    if not bad:
        return None
    return Finding("non-default capabilities",
                   f"{_containers_phrase(bad)} must not include {_quoted(added)} in securityContext.capabilities.add")


def check_host_path_volumes(spec: Obj) -> Finding | None:
    bad = [v.get("name", "") for v in spec.get("volumes") or [] if isinstance(v, dict) and v.get("hostPath") is not None]
    if not bad:
        return None
    return Finding("hostPath volumes", f"volume{'s' if len(bad) > 1 else ''} {_quoted(bad)}")


def check_host_ports(spec: Obj) -> Finding | None:
    bad: list[str] = []
    ports: list[str] = []
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if isinstance(p, dict) and p.get("hostPort")]
        if used:
            bad.append(c.get("name", ""))
            ports += used
    if not bad:
        return None
    return Finding("hostPort", f"{_containers_phrase(bad)} uses hostPort{'s' if len(ports) > 1 else ''} {', '.join(ports)}")


def check_seccomp_baseline(spec: Obj) -> Finding | None:
    bad = []
    if (_sc(spec).get("seccompProfile") or {}).get("type") == "Unconfined":
        bad.append("pod")
    bad += [f'container "{c.get("name", "")}"' for c in _containers(spec)
            if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if not bad:
        return None
    return Finding("seccompProfile", f'{" and ".join(bad)} must not set securityContext.seccompProfile.type to "Unconfined"')


def check_proc_mount(spec: Obj) -> Finding | None:
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("procMount") not in (None, "Default")]
    if not bad:
        return None
    return Finding("procMount", f'{_containers_phrase(bad)} must not set securityContext.procMount to "Unmasked"')


def check_sysctls(spec: Obj) -> Finding | None:
    bad = [s.get("name", "") for s in _sc(spec).get("sysctls") or [] if isinstance(s, dict)
           and s.get("name") not in SAFE_SYSCTLS]
    return Finding("forbidden sysctls", ", ".join(bad)) if bad else None


# --------------------------------------------------------------------------- restricted checks


def check_restricted_volumes(spec: Obj) -> Finding | None:
    bad: list[tuple[str, str]] = []
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        kinds = [k for k, val in v.items() if k != "name" and val is not None and k not in RESTRICTED_VOLUME_TYPES]
        if kinds:
            bad.append((v.get("name", ""), kinds[0]))
    if not bad:
        return None
    names = _quoted(n for n, _ in bad)
    types = _quoted(dict.fromkeys(t for _, t in bad))
    plural = "s" if len(bad) > 1 else ""
    return Finding("restricted volume types", f"volume{plural} {names} use{'' if plural else 's'} restricted volume "
                                              f"type{'s' if len({t for _, t in bad}) > 1 else ''} {types}")


def check_allow_privilege_escalation(spec: Obj) -> Finding | None:
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return Finding("allowPrivilegeEscalation != false",
                   f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false")


def check_capabilities_restricted(spec: Obj) -> Finding | None:
    no_drop: list[str] = []
    added: list[str] = []
    adders: list[str] = []
    for c in _containers(spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            no_drop.append(c.get("name", ""))
        extra = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            adders.append(c.get("name", ""))
            added += [cap for cap in extra if cap not in added]
    parts = []
    if no_drop:
        parts.append(f'{_containers_phrase(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adders:
        parts.append(f"{_containers_phrase(adders)} must not include {_quoted(added)} in securityContext.capabilities.add")
    return Finding("unrestricted capabilities", "; ".join(parts)) if parts else None


def check_run_as_non_root(spec: Obj) -> Finding | None:
    pod_value = _sc(spec).get("runAsNonRoot")
    explicit_false = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsNonRoot") is False]
    unset = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsNonRoot") is None]
    parts = []
    if pod_value is False:
        parts.append("pod must not set securityContext.runAsNonRoot=false")
    if explicit_false:
        parts.append(f"{_containers_phrase(explicit_false)} must not set securityContext.runAsNonRoot=false")
    if pod_value is not True and unset:
        parts.append(f"pod or {_containers_phrase(unset)} must set securityContext.runAsNonRoot=true")
    return Finding("runAsNonRoot != true", "; ".join(parts)) if parts else None


def check_run_as_user(spec: Obj) -> Finding | None:
    parts = []
    if _sc(spec).get("runAsUser") == 0:
        parts.append("pod must not set runAsUser=0")
    bad = [c.get("name", "") for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if bad:
        parts.append(f"{_containers_phrase(bad)} must not set runAsUser=0")
    return Finding("runAsUser=0", "; ".join(parts)) if parts else None


def check_seccomp_restricted(spec: Obj) -> Finding | None:
    allowed = ("RuntimeDefault", "Localhost")
    pod_type = (_sc(spec).get("seccompProfile") or {}).get("type")
    wrong = [c.get("name", "") for c in _containers(spec)
             if (_sc(c).get("seccompProfile") or {}).get("type") not in (None, *allowed)]
    unset = [c.get("name", "") for c in _containers(spec) if (_sc(c).get("seccompProfile") or {}).get("type") is None]
    parts = []
    if pod_type is not None and pod_type not in allowed:
        parts.append('pod must not set securityContext.seccompProfile.type to "' + str(pod_type) + '"')
    if wrong:
        parts.append(f'{_containers_phrase(wrong)} must not set securityContext.seccompProfile.type to '
                     f'"Unconfined"')
    if pod_type not in allowed and unset:
        parts.append(f'pod or {_containers_phrase(unset)} must set securityContext.seccompProfile.type to '
                     f'"RuntimeDefault" or "Localhost"')
    return Finding("seccompProfile", "; ".join(parts)) if parts else None


# --------------------------------------------------------------------------- the levels


#: (check ID, the level from which it applies, check): evaluated in ID order, as Kubernetes does.
CHECKS: tuple[tuple[str, str, Check], ...] = tuple(sorted((
    ("allowPrivilegeEscalation", RESTRICTED, check_allow_privilege_escalation),
    ("capabilities_baseline", BASELINE, check_capabilities_baseline),
    ("capabilities_restricted", RESTRICTED, check_capabilities_restricted),
    ("hostNamespaces", BASELINE, check_host_namespaces),
    ("hostPathVolumes", BASELINE, check_host_path_volumes),
    ("hostPorts", BASELINE, check_host_ports),
    ("privileged", BASELINE, check_privileged),
    ("procMount", BASELINE, check_proc_mount),
    ("restrictedVolumes", RESTRICTED, check_restricted_volumes),
    ("runAsNonRoot", RESTRICTED, check_run_as_non_root),
    ("runAsUser", RESTRICTED, check_run_as_user),
    ("seccompProfile_baseline", BASELINE, check_seccomp_baseline),
    ("seccompProfile_restricted", RESTRICTED, check_seccomp_restricted),
    ("sysctls", BASELINE, check_sysctls),
), key=lambda entry: entry[0].lower()))


def evaluate(spec: Obj, level: str) -> list[Finding]:
    """What ``spec`` does that ``level`` forbids (nothing for ``privileged``)."""
    if level == PRIVILEGED:
        return []
    applies = (BASELINE,) if level == BASELINE else (BASELINE, RESTRICTED)
    findings = []
    for check_id, check_level, check in CHECKS:
        if check_level not in applies:
            continue
        if level == RESTRICTED and check_id == "seccompProfile_baseline":
            continue  # the restricted seccomp check covers it
        if level == RESTRICTED and check_id == "capabilities_baseline":
            continue
        finding = check(spec)
        if finding is not None:
            findings.append(finding)
    return findings


@dataclass(frozen=True)
class NamespacePolicy:
    """The levels a namespace asks for (its labels, or the server's defaults)."""

    enforce: str = PRIVILEGED
    warn: str = PRIVILEGED
    audit: str = PRIVILEGED


def namespace_policy(labels: dict[str, str] | None, default: NamespacePolicy = NamespacePolicy()) -> NamespacePolicy:
    """The policy a namespace's labels set; unknown level values fall back to the default (Kubernetes keeps the
    strictest reading of an invalid label: ``restricted``)."""
    labels = labels or {}

    def level(mode: str, fallback: str) -> str:
        value = labels.get(LABEL_PREFIX + mode)
        if value is None:
            return fallback
        return value if value in LEVELS else RESTRICTED

    return NamespacePolicy(level("enforce", default.enforce), level("warn", default.warn),
                           level("audit", default.audit))


def violation_message(kind_plural: str, name: str, level: str, findings: list[Finding]) -> str:
    """Kubernetes' 403 text for a pod refused by the ``enforce`` level."""
    return (f'{kind_plural} "{name}" is forbidden: violates PodSecurity "{level}:latest": '
            + ", ".join(str(f) for f in findings))


def warning_message(level: str, findings: list[Finding]) -> str:
    """Kubernetes' Warning text for the ``warn`` level."""
    return f'would violate PodSecurity "{level}:latest": ' + ", ".join(str(f) for f in findings)


def validate(rest: ResourceREST, pod: Obj, old: Obj | None, attrs: Attributes) -> list[str]:
    """Refuse a pod its namespace's ``enforce`` level forbids (403); warn for ``warn``.

    The levels come from the namespace's ``pod-security.kubernetes.io/*`` labels, else the
    server's defaults (``ApiContext.pod_security_defaults``); ``kube-system`` is exempt.
    """
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    spec = pod.get("spec")
    if namespace in EXEMPT_NAMESPACES or not isinstance(spec, dict):
        return []
    ns_rest = rest.ctx.rest_by("", "v1", "namespaces")
    ns = ns_rest.cache.get(ns_rest.rt.key(None, namespace)) if ns_rest is not None else None
    labels = (ns.metadata.get("labels") if ns is not None else None) or {}
    policy = namespace_policy(labels, rest.ctx.pod_security_defaults)
    findings = evaluate(spec, policy.enforce)
    if findings:
        name = str(meta.get("name") or "")
        raise errors.ApiError(403, "Forbidden", violation_message("pods", name, policy.enforce, findings),
                              {"name": name, "kind": "pods"})
    warned = evaluate(spec, policy.warn)
    return [warning_message(policy.warn, warned)] if warned else []


PLUGIN = AdmissionPlugin(NAME, frozenset({("", "pods")}), CREATE_ONLY, validate=validate)

__all__ = [
    "BASELINE", "CHECKS", "EXEMPT_NAMESPACES", "Finding", "NamespacePolicy", "PLUGIN", "PRIVILEGED", "RESTRICTED",
    "evaluate", "namespace_policy", "violation_message", "warning_message",
]
