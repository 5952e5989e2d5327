"""What makes a pod spec valid: Kubernetes' ``ValidatePodSpec``, the parts a pod's life depends on.

Why here, and why this much: the kubelet and the simulator act on what is stored. A
probe with no handler, a mount of a volume that does not exist or a lifecycle hook
that names nothing would be stored and then fail far from the user -- or, worse, be
silently ignored. Kubernetes refuses such a pod at create with a 422 that names the
field; so does podlife, with the same field paths and messages (``pkg/apis/core/
validation``), so ``kubectl`` shows the same error for the same mistake.

Covered (run after defaulting, so e.g. ``httpGet.path`` is already ``/``):

* containers (regular and init): name, image, command/args, ports (number, host port,
  protocol, name, duplicates), env (names, exactly one ``valueFrom`` source with its
  required keys), envFrom, resources (quantities, requests not above limits), volume
  mounts (name of a declared volume, mountPath required and unique), probes (exactly
  one handler, a valid port, positive timings, success threshold 1 for liveness and
  startup), lifecycle hooks (exactly one handler);
* volumes: names (DNS labels, unique), exactly one source, the source's required fields.

The rest of a spec (scheduling, security context details) is checked by the kinds'
schemas at decode time or is a later issue's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..machinery.names import dns1123_label_errors, qualified_name_errors
from ..machinery.quantity import QuantityError, parse_quantity
from .types import FieldError, Obj, forbidden, invalid, not_supported, required

PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_ENV_NAME_MESSAGE = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                     "or '.', and must not start with a digit")
_IANA_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_PORT_RANGE = "must be between 1 and 65535, inclusive"

#: The handler fields of a probe and of a lifecycle hook, in Kubernetes' order.
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
HOOK_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
#: Volume sources (Kubernetes' list).
VOLUME_SOURCES = (  # in the order Kubernetes' validateVolumeSource looks at them
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
    "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte", "downwardAPI", "fc",
    "flexVolume", "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk",
    "storageos", "projected", "scaleIO", "csi", "ephemeral", "image",
)
ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", path, "", value)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, "", value)


def _set_fields(obj: Any, names: Iterable[str]) -> list[str]:
    return [n for n in names if isinstance(obj, dict) and obj.get(n) is not None]


# --------------------------------------------------------------------------- the spec


def validate_pod_spec(spec: Obj) -> list[FieldError]:
    """Containers, init containers and volumes of ``spec`` (field paths from ``spec``)."""
    errs, volumes = _validate_volumes(spec.get("volumes"), "spec.volumes")
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        if containers is None:
            continue
        if not isinstance(containers, list):
            errs.append(invalid(f"spec.{key}", containers, "must be a list"))
            continue
        for i, c in enumerate(containers):
            errs += validate_container(c, f"spec.{key}[{i}]", names, volumes, init=key == "initContainers")
    return errs + _validate_scheduling_gates(spec.get("schedulingGates"))


def _validate_scheduling_gates(gates: Any) -> list[FieldError]:
    """``validateSchedulingGates``: each gate a qualified name, none twice."""
    if gates is None:
        return []
    if not isinstance(gates, list):
        return [invalid("spec.schedulingGates", gates, "must be a list")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        name = gate.get("name") if isinstance(gate, dict) else None
        path = f"spec.schedulingGates[{i}].name"
        if not isinstance(name, str) or not name:
            errs.append(required(path))
            continue
        errs += [invalid(path, name, message) for message in qualified_name_errors(name)]
        if name in seen:
            errs.append(duplicate(path, name))
        seen.add(name)
    return errs


def _validate_volumes(raw: Any, path: str) -> tuple[list[FieldError], set[str]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    if raw is None:
        return errs, names
    if not isinstance(raw, list):
        return [invalid(path, raw, "must be a list")], names
    for i, vol in enumerate(raw):
        vpath = f"{path}[{i}]"
        if not isinstance(vol, dict):
            errs.append(invalid(vpath, vol, "must be an object"))
            continue
        name = vol.get("name")
        if not name or not isinstance(name, str):
            errs.append(required(f"{vpath}.name"))
        else:
            errs += [invalid(f"{vpath}.name", name, m) for m in dns1123_label_errors(name)]
            if name in names:
                errs.append(duplicate(f"{vpath}.name", name))
            names.add(name)
        sources = _set_fields(vol, VOLUME_SOURCES)
        if not sources:
            errs.append(required(vpath, "must specify a volume type"))
        elif len(sources) > 1:
            errs.append(forbidden(f"{vpath}.{sources[1]}", "may not specify more than 1 volume type"))
        else:
            errs += _validate_volume_source(sources[0], vol[sources[0]], f"{vpath}.{sources[0]}")
    return errs, names


def _validate_volume_source(kind: str, source: Any, path: str) -> list[FieldError]:
    if not isinstance(source, dict):
        return [invalid(path, source, "must be an object")]
    needs = {"hostPath": "path", "persistentVolumeClaim": "claimName", "nfs": "server", "csi": "driver"}
    field = needs.get(kind)
    if field is not None and not source.get(field):
        return [required(f"{path}.{field}")]
    if kind == "emptyDir" and source.get("medium") not in (None, "", "Memory", "HugePages"):
        return [not_supported(f"{path}.medium", source.get("medium"), ["", "Memory", "HugePages"])]
    if kind in ("configMap", "secret"):
        for i, item in enumerate(source.get("items") or []):
            if not isinstance(item, dict) or not item.get("key"):
                return [required(f"{path}.items[{i}].key")]
            if not item.get("path"):
                return [required(f"{path}.items[{i}].path")]
    return []


# --------------------------------------------------------------------------- containers


def validate_container(c: Any, path: str, names: set[str], volumes: set[str], *, init: bool = False) -> list[FieldError]:
    """One container; ``names`` collects the pod's container names (they must be unique)."""
    if not isinstance(c, dict):
        return [invalid(path, c, "must be an object")]
    errs = _validate_name_and_image(c, path, names)
    for field_name in ("command", "args"):
        val = c.get(field_name)
        if val is not None and (not isinstance(val, list) or not all(isinstance(x, str) for x in val)):
            errs.append(invalid(f"{path}.{field_name}", val, "must be a list of strings"))
    policy = c.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    tmp = c.get("terminationMessagePolicy")
    if tmp is not None and tmp not in TERMINATION_MESSAGE_POLICIES:
        errs.append(not_supported(f"{path}.terminationMessagePolicy", tmp, TERMINATION_MESSAGE_POLICIES))
    errs += _validate_ports(c.get("ports"), f"{path}.ports")
    errs += _validate_env(c.get("env"), f"{path}.env")
    errs += _validate_env_from(c.get("envFrom"), f"{path}.envFrom")
    errs += _validate_resources(c.get("resources"), f"{path}.resources")
    errs += _validate_mounts(c.get("volumeMounts"), f"{path}.volumeMounts", volumes)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe) is not None:
            if init and c.get("restartPolicy") != "Always":
                errs.append(forbidden(f"{path}.{probe}", "may not be set for init containers without restartPolicy=Always"))
                continue
            errs += _validate_probe(c[probe], f"{path}.{probe}", one_success=probe != "readinessProbe")
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if lifecycle.get(hook) is not None:
                errs += _validate_handler(lifecycle[hook], f"{path}.lifecycle.{hook}", HOOK_HANDLERS)
    elif lifecycle is not None:
        errs.append(invalid(f"{path}.lifecycle", lifecycle, "must be an object"))
    return errs


def _validate_name_and_image(c: Obj, path: str, names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    elif not isinstance(name, str):
        errs.append(invalid(f"{path}.name", name, "must be a string"))
    else:
        errs += [invalid(f"{path}.name", name, m) for m in dns1123_label_errors(name)]
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    image = c.get("image")
    if not image or not isinstance(image, str) or not image.strip():
        errs.append(required(f"{path}.image"))
    return errs


def _validate_ports(ports: Any, path: str) -> list[FieldError]:
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [invalid(path, ports, "must be a list")]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        ppath = f"{path}[{i}]"
        if not isinstance(port, dict):
            errs.append(invalid(ppath, port, "must be an object"))
            continue
        cp = port.get("containerPort")
        if cp is None:
            errs.append(required(f"{ppath}.containerPort"))
        elif not isinstance(cp, int) or isinstance(cp, bool) or not 0 < cp < 65536:
            errs.append(invalid(f"{ppath}.containerPort", cp, _PORT_RANGE))
        hp = port.get("hostPort")
        if hp not in (None, 0) and (not isinstance(hp, int) or isinstance(hp, bool) or not 0 < hp < 65536):
            errs.append(invalid(f"{ppath}.hostPort", hp, _PORT_RANGE))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            errs.append(not_supported(f"{ppath}.protocol", protocol, PROTOCOLS))
        name = port.get("name")
        if name:
            errs += [invalid(f"{ppath}.name", name, m) for m in iana_service_name_errors(str(name))]
            if name in names:
                errs.append(duplicate(f"{ppath}.name", name))
            names.add(str(name))
    return errs


def iana_service_name_errors(name: str) -> list[str]:
    """Kubernetes' ``IsValidPortName``: a named port is an IANA service name."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not _IANA_RE.match(name):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not any(ch.isalpha() for ch in name):
        problems.append("must contain at least one letter (a-z)")
    return problems


def _validate_env(env: Any, path: str) -> list[FieldError]:
    if env is None:
        return []
    if not isinstance(env, list):
        return [invalid(path, env, "must be a list")]
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        epath = f"{path}[{i}]"
        if not isinstance(var, dict) or not var.get("name"):
            errs.append(required(f"{epath}.name"))
            continue
        if not _ENV_NAME_RE.match(str(var["name"])):
            errs.append(invalid(f"{epath}.name", var["name"], _ENV_NAME_MESSAGE))
        source = var.get("valueFrom")
        if source is None:
            continue
        if var.get("value"):
            errs.append(invalid(f"{epath}.valueFrom", "", "may not be specified when `value` is not empty"))
        errs += _validate_env_source(source, f"{epath}.valueFrom")
    return errs


def _validate_env_source(source: Any, path: str) -> list[FieldError]:
    kinds = _set_fields(source, ENV_SOURCES)
    if not kinds:
        return [invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                                  "`secretKeyRef`")]
    if len(kinds) > 1:
        return [invalid(path, "", "may not have more than one field specified at a time")]
    kind = kinds[0]
    ref = source[kind]
    if not isinstance(ref, dict):
        return [invalid(f"{path}.{kind}", ref, "must be an object")]
    if kind == "fieldRef" and not ref.get("fieldPath"):
        return [required(f"{path}.fieldRef.fieldPath")]
    if kind == "resourceFieldRef" and not ref.get("resource"):
        return [required(f"{path}.resourceFieldRef.resource")]
    if kind in ("configMapKeyRef", "secretKeyRef"):
        errs = []
        if not ref.get("key"):
            errs.append(required(f"{path}.{kind}.key"))
        if not ref.get("name"):
            errs.append(required(f"{path}.{kind}.name"))
        return errs
    return []


def _validate_env_from(env_from: Any, path: str) -> list[FieldError]:
    if env_from is None:
        return []
    if not isinstance(env_from, list):
        return [invalid(path, env_from, "must be a list")]
    errs: list[FieldError] = []
    for i, source in enumerate(env_from):
        kinds = _set_fields(source, ("configMapRef", "secretRef"))
        if not kinds:
            errs.append(invalid(f"{path}[{i}]", "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(kinds) > 1:
            errs.append(invalid(f"{path}[{i}]", "", "may not have more than one field specified at a time"))
        elif not (source[kinds[0]] or {}).get("name"):
            errs.append(required(f"{path}[{i}].{kinds[0]}.name"))
    return errs


def _validate_resources(resources: Any, path: str) -> list[FieldError]:
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [invalid(path, resources, "must be an object")]
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        values = resources.get(kind) or {}
        if not isinstance(values, dict):
            errs.append(invalid(f"{path}.{kind}", values, "must be a map of quantities"))
            continue
        parsed[kind] = {}
        for name, value in values.items():
            try:
                amount = parse_quantity(value)
            except (QuantityError, TypeError, ValueError):
                errs.append(invalid(f"{path}.{kind}[{name}]", value, "must be a valid quantity"))
                continue
            if amount < 0:
                errs.append(invalid(f"{path}.{kind}[{name}]", value, "must be greater than or equal to 0"))
            parsed[kind][name] = (amount, value)
    for name, (amount, text) in (parsed.get("requests") or {}).items():
        limit = (parsed.get("limits") or {}).get(name)
        if limit is not None and amount > limit[0]:
            errs.append(invalid(f"{path}.requests", str(text), f"must be less than or equal to {name} limit of {limit[1]}"))
    return errs


def _validate_mounts(mounts: Any, path: str, volumes: set[str]) -> list[FieldError]:
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        return [invalid(path, mounts, "must be a list")]
    errs: list[FieldError] = []
    paths: set[str] = set()
    for i, mount in enumerate(mounts):
        mpath = f"{path}[{i}]"
        if not isinstance(mount, dict):
            errs.append(invalid(mpath, mount, "must be an object"))
            continue
        name = mount.get("name")
        if not name:
            errs.append(required(f"{mpath}.name"))
        elif name not in volumes:
            errs.append(not_found(f"{mpath}.name", name))
        mount_path = mount.get("mountPath")
        if not mount_path or not isinstance(mount_path, str):
            errs.append(required(f"{mpath}.mountPath"))
        elif mount_path in paths:
            errs.append(invalid(f"{mpath}.mountPath", mount_path, "must be unique"))
        else:
            paths.add(mount_path)
    return errs


# --------------------------------------------------------------------------- probes and hooks


def _validate_probe(probe: Any, path: str, *, one_success: bool) -> list[FieldError]:
    if not isinstance(probe, dict):
        return [invalid(path, probe, "must be an object")]
    errs = _validate_handler(probe, path, PROBE_HANDLERS)
    for field_name, minimum in (("initialDelaySeconds", 0), ("timeoutSeconds", 0), ("periodSeconds", 0),
                                ("successThreshold", 0), ("failureThreshold", 0),
                                ("terminationGracePeriodSeconds", 1)):
        value = probe.get(field_name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            detail = ("must be greater than or equal to 0" if minimum == 0 else "must be greater than 0")
            errs.append(invalid(f"{path}.{field_name}", value, detail))
    success = probe.get("successThreshold")
    if one_success and isinstance(success, int) and success != 1:
        errs.append(invalid(f"{path}.successThreshold", success, "must be 1"))
    return errs


def _validate_handler(handler: Any, path: str, kinds: tuple[str, ...]) -> list[FieldError]:
    """Exactly one handler, and that handler's required fields (Kubernetes' messages)."""
    if not isinstance(handler, dict):
        return [invalid(path, handler, "must be an object")]
    present = _set_fields(handler, kinds)
    if not present:
        return [required(path, "must specify a handler type")]
    if len(present) > 1:
        return [forbidden(f"{path}.{present[1]}", "may not specify more than 1 handler type")]
    kind = present[0]
    action = handler[kind]
    hpath = f"{path}.{kind}"
    if not isinstance(action, dict):
        return [invalid(hpath, action, "must be an object")]
    if kind == "exec":
        command = action.get("command")
        return [] if command else [required(f"{hpath}.command")]
    if kind == "sleep":
        seconds = action.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
            return [invalid(f"{hpath}.seconds", seconds, "must be greater than or equal to 0")]
        return []
    errs = _validate_port(action.get("port"), f"{hpath}.port")
    if kind == "httpGet":
        if not action.get("path"):
            errs.append(required(f"{hpath}.path"))
        scheme = action.get("scheme")
        if scheme is not None and scheme not in ("HTTP", "HTTPS"):
            errs.append(not_supported(f"{hpath}.scheme", scheme, ["HTTP", "HTTPS"]))
    return errs


def _validate_port(port: Any, path: str) -> list[FieldError]:
    """A port number or an IANA service name (an IntOrString; unset is the number 0)."""
    if port is None:
        port = 0
    if isinstance(port, bool):
        return [invalid(path, port, _PORT_RANGE)]
    if isinstance(port, int):
        return [] if 0 < port < 65536 else [invalid(path, port, _PORT_RANGE)]
    if isinstance(port, str):  # a named port ("8080" as a string is a name too, and not a valid one)
        return [invalid(path, port, m) for m in iana_service_name_errors(port)]
    return [invalid(path, port, "must be an int or a string")]


__all__ = ["iana_service_name_errors", "validate_container", "validate_pod_spec"]
