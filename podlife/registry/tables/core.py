"""Tables for core (``v1``) kinds other than Pod, plus ``events.k8s.io`` Events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._base import (
    JSON,
    NONE,
    UNKNOWN,
    UNSET,
    age,
    age_column,
    as_int,
    as_list,
    column,
    condition,
    container_cells,
    containers_column,
    dig,
    format_labels,
    images_column,
    meta,
    name_column,
    name_of,
    replica_columns,
    since,
    spec,
    status,
    TablePrinter,
    wide,
)

# --------------------------------------------------------------------------
# Node

NODE_ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
LEGACY_NODE_ROLE_LABEL = "kubernetes.io/role"


def node_status_text(node: Mapping[str, Any]) -> str:
    """``Ready``/``NotReady``/``Unknown``, plus ``,SchedulingDisabled`` when cordoned."""
    ready = None
    for item in as_list(status(node).get("conditions")):
        if isinstance(item, dict) and item.get("type") == "Ready":
            ready = item  # the last entry of a type wins, like a map keyed by type
    parts = ["Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")]
    if spec(node).get("unschedulable") is True:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: Mapping[str, Any]) -> list[str]:
    """Roles from ``node-role.kubernetes.io/<role>`` keys and the legacy ``kubernetes.io/role`` value."""
    roles: set[str] = set()
    for key, value in (meta(node).get("labels") or {}).items():
        if key.startswith(NODE_ROLE_LABEL_PREFIX) and key[len(NODE_ROLE_LABEL_PREFIX):]:
            roles.add(key[len(NODE_ROLE_LABEL_PREFIX):])
        elif key == LEGACY_NODE_ROLE_LABEL and value:
            roles.add(str(value))
    return sorted(roles)


def _node_address(node: Mapping[str, Any], address_type: str) -> str:
    for address in as_list(status(node).get("addresses")):
        if isinstance(address, dict) and address.get("type") == address_type:
            return str(address.get("address", ""))
    return NONE


def _node_cells(node: JSON, now: datetime) -> list[Any]:
    info = status(node).get("nodeInfo") or {}
    return [
        name_of(node),
        node_status_text(node),
        ",".join(node_roles(node)) or NONE,
        age(node, now),
        info.get("kubeletVersion", ""),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or UNKNOWN,
        info.get("kernelVersion") or UNKNOWN,
        info.get("containerRuntimeVersion") or UNKNOWN,
    ]


NODE_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Status", description="Readiness of the node, and whether scheduling is disabled."),
        column("Roles", description="Roles taken from the node-role labels."),
        age_column(),
        column("Version", description="Kubelet version reported by the node."),
        wide("Internal-IP", description="First InternalIP address of the node."),
        wide("External-IP", description="First ExternalIP address of the node."),
        wide("OS-Image", description="Operating system image reported by the node."),
        wide("Kernel-Version", description="Kernel version reported by the node."),
        wide("Container-Runtime", description="Container runtime and version reported by the node."),
    ),
    cells=_node_cells,
)

# --------------------------------------------------------------------------
# Event (core/v1 and events.k8s.io/v1)


def normalize_event(event: Mapping[str, Any], group: str = "") -> JSON:
    """Map an ``events.k8s.io/v1`` Event onto core/v1 field names (core events pass through)."""
    if group != "events.k8s.io":
        return dict(event)
    return {
        "metadata": event.get("metadata") or {},
        "involvedObject": event.get("regarding") or {},
        "reason": event.get("reason", ""),
        "message": event.get("note", ""),
        "source": event.get("deprecatedSource") or {},
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount", 0),
        "type": event.get("type", ""),
        "eventTime": event.get("eventTime"),
        "series": event.get("series"),
        "reportingComponent": event.get("reportingController", ""),
        "reportingInstance": event.get("reportingInstance", ""),
    }


def event_target(event: Mapping[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    name = involved.get("name") or ""
    return f"{kind}/{name}" if name else kind


def event_source(event: Mapping[str, Any]) -> str:
    """``component, host`` using the reporting controller/instance as fallbacks."""
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else str(component)


def _event_times_and_count(event: Mapping[str, Any], now: datetime) -> tuple[str, str, int]:
    first_seen = (since(event.get("firstTimestamp"), now) if event.get("firstTimestamp")
                  else since(event.get("eventTime"), now))
    last_seen = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first_seen
    count = as_int(event.get("count"))
    series = event.get("series")
    if isinstance(series, dict):
        last_seen = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    return first_seen, last_seen, count


def _event_cells(event: JSON, now: datetime) -> list[Any]:
    first_seen, last_seen, count = _event_times_and_count(event, now)
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        event_target(event),
        dig(event, "involvedObject", "fieldPath") or "",
        event_source(event),
        str(event.get("message") or "").strip(),
        first_seen,
        count,
        name_of(event),
    ]


EVENT_COLUMNS = (
    column("Last Seen", description="Time since the event was last observed."),
    column("Type", description="Event type, Normal or Warning."),
    column("Reason", description="Short machine-readable reason of the event."),
    column("Object", description="Object the event is about, as kind/name."),
    wide("Subobject", description="Field path of the part of the object the event is about."),
    wide("Source", description="Component (and host) that reported the event."),
    column("Message", description="Human-readable description of the event."),
    wide("First Seen", description="Time since the event was first observed."),
    wide("Count", description="How many times the event occurred."),
    column("Name", format_="name", priority=1, description="Name of the Event object."),
)

EVENT_PRINTER = TablePrinter(columns=EVENT_COLUMNS, cells=_event_cells)
EVENTS_API_PRINTER = TablePrinter(
    columns=EVENT_COLUMNS,
    cells=lambda event, now: _event_cells(normalize_event(event, "events.k8s.io"), now),
)

# --------------------------------------------------------------------------
# Service


def _load_balancer_addresses(svc: Mapping[str, Any]) -> list[str]:
    addresses: set[str] = set()
    for ingress in as_list(dig(svc, "status", "loadBalancer", "ingress")):
        if isinstance(ingress, dict):
            value = ingress.get("ip") or ingress.get("hostname")
            if value:
                addresses.add(str(value))
    return sorted(addresses)


def service_external_ip(svc: Mapping[str, Any]) -> str:
    svc_spec = spec(svc)
    service_type = svc_spec.get("type") or "ClusterIP"
    external_ips = [str(ip) for ip in as_list(svc_spec.get("externalIPs"))]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or NONE
    if service_type == "LoadBalancer":
        addresses = _load_balancer_addresses(svc) + external_ips
        return ",".join(addresses) if addresses else "<pending>"
    if service_type == "ExternalName":
        return str(svc_spec.get("externalName", ""))
    return UNKNOWN


def service_ports(svc: Mapping[str, Any]) -> str:
    pieces = []
    for port in as_list(spec(svc).get("ports")):
        if not isinstance(port, dict):
            continue
        protocol = port.get("protocol") or "TCP"
        node_port = as_int(port.get("nodePort"))
        number = as_int(port.get("port"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return ",".join(pieces) or NONE


def _service_cells(svc: JSON, now: datetime) -> list[Any]:
    svc_spec = spec(svc)
    cluster_ips = as_list(svc_spec.get("clusterIPs")) or ([svc_spec["clusterIP"]] if svc_spec.get("clusterIP") else [])
    return [
        name_of(svc),
        svc_spec.get("type") or "ClusterIP",
        str(cluster_ips[0]) if cluster_ips else NONE,
        service_external_ip(svc),
        service_ports(svc),
        age(svc, now),
        format_labels(svc_spec.get("selector")),
    ]


SERVICE_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Type", description="How the service is exposed."),
        column("Cluster-IP", description="Virtual IP of the service inside the cluster."),
        column("External-IP", description="Addresses reachable from outside the cluster."),
        column("Port(s)", description="Service ports, with node ports when allocated."),
        age_column(),
        wide("Selector", description="Labels of the pods backing the service."),
    ),
    cells=_service_cells,
)

# --------------------------------------------------------------------------
# Endpoints


def format_endpoints(endpoints: Mapping[str, Any], limit: int = 3) -> str:
    """``ip:port`` pairs (or bare IPs for port-less subsets), at most ``limit`` shown."""
    subsets = [s for s in as_list(endpoints.get("subsets")) if isinstance(s, dict)]
    if not subsets:
        return NONE
    shown: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [str(a.get("ip", "")) for a in as_list(subset.get("addresses")) if isinstance(a, dict)]
        ports = [p for p in as_list(subset.get("ports")) if isinstance(p, dict)]
        entries = ([ip for ip in addresses] if not ports else
                   [_host_port(ip, as_int(port.get("port"))) for port in ports for ip in addresses])
        total += len(entries)
        shown.extend(entries[: max(0, limit - len(shown))])
    text = ",".join(shown)
    return f"{text} + {total - limit} more..." if total > limit else text


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


ENDPOINTS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Endpoints", description="Addresses and ports of the ready endpoints."),
        age_column(),
    ),
    cells=lambda obj, now: [name_of(obj), format_endpoints(obj), age(obj, now)],
)

# --------------------------------------------------------------------------
# Persistent volumes and claims

ACCESS_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
LEGACY_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def access_modes_text(modes: Any) -> str:
    present = {str(m) for m in as_list(modes)}
    return ",".join(short for mode, short in ACCESS_MODE_ABBREVIATIONS if mode in present)


def storage_class_of(obj: Mapping[str, Any]) -> str:
    annotations = meta(obj).get("annotations") or {}
    if LEGACY_STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[LEGACY_STORAGE_CLASS_ANNOTATION])
    return str(spec(obj).get("storageClassName") or "")


def _phase_or_terminating(obj: Mapping[str, Any]) -> str:
    if meta(obj).get("deletionTimestamp"):
        return "Terminating"
    return str(status(obj).get("phase") or "")


def _pv_cells(pv: JSON, now: datetime) -> list[Any]:
    pv_spec = spec(pv)
    claim = pv_spec.get("claimRef")
    claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if isinstance(claim, dict) else ""
    return [
        name_of(pv),
        str(dig(pv_spec, "capacity", "storage") or "0"),
        access_modes_text(pv_spec.get("accessModes")),
        pv_spec.get("persistentVolumeReclaimPolicy", ""),
        _phase_or_terminating(pv),
        claim_text,
        storage_class_of(pv),
        pv_spec.get("volumeAttributesClassName") or UNSET,
        status(pv).get("reason", ""),
        age(pv, now),
        pv_spec.get("volumeMode") or UNSET,
    ]


def _pvc_cells(pvc: JSON, now: datetime) -> list[Any]:
    pvc_spec, pvc_status = spec(pvc), status(pvc)
    bound = bool(pvc_spec.get("volumeName"))
    return [
        name_of(pvc),
        _phase_or_terminating(pvc),
        pvc_spec.get("volumeName", ""),
        str(dig(pvc_status, "capacity", "storage") or "0") if bound else "",
        access_modes_text(pvc_status.get("accessModes")) if bound else "",
        storage_class_of(pvc),
        pvc_spec.get("volumeAttributesClassName") or UNSET,
        age(pvc, now),
        pvc_spec.get("volumeMode") or UNSET,
    ]


PV_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Capacity", description="Storage capacity of the volume."),
        column("Access Modes", description="Ways the volume can be mounted."),
        column("Reclaim Policy", description="What happens to the volume when released."),
        column("Status", description="Phase of the volume."),
        column("Claim", description="Claim bound to the volume, as namespace/name."),
        column("StorageClass", description="Storage class of the volume."),
        column("VolumeAttributesClass", description="Volume attributes class of the volume."),
        column("Reason", description="Reason for a failed volume."),
        age_column(),
        wide("VolumeMode", description="Filesystem or Block."),
    ),
    cells=_pv_cells,
)

PVC_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Status", description="Phase of the claim."),
        column("Volume", description="Volume bound to the claim."),
        column("Capacity", description="Capacity of the bound volume."),
        column("Access Modes", description="Access modes of the bound volume."),
        column("StorageClass", description="Storage class requested by the claim."),
        column("VolumeAttributesClass", description="Volume attributes class of the claim."),
        age_column(),
        wide("VolumeMode", description="Filesystem or Block."),
    ),
    cells=_pvc_cells,
)

# --------------------------------------------------------------------------
# Small core kinds


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (dict, list)) else 0


def _resource_quota_usage(quota: Mapping[str, Any]) -> tuple[str, str]:
    """``resource: used/hard`` lists split into request-like and ``limits.*`` resources."""
    hard = status(quota).get("hard") or {}
    used = status(quota).get("used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        entry = f"{resource}: {used.get(resource, '0')}/{hard[resource]}"
        (limits if resource.startswith("limits.") else requests).append(entry)
    return ", ".join(requests), ", ".join(limits)


def _component_status_cells(obj: JSON, now: datetime) -> list[Any]:
    healthy = condition(obj.get("conditions"), "Healthy")
    if healthy is None:
        return [name_of(obj), "Unknown", "", ""]
    state = "Healthy" if healthy.get("status") == "True" else "Unhealthy"
    return [name_of(obj), state, healthy.get("message", ""), healthy.get("error", "")]


def _replication_controller_cells(rc: JSON, now: datetime) -> list[Any]:
    rc_spec, rc_status = spec(rc), status(rc)
    names, images = container_cells(dig(rc_spec, "template", "spec"))
    return [
        name_of(rc),
        as_int(rc_spec.get("replicas"), 1),
        as_int(rc_status.get("replicas")),
        as_int(rc_status.get("readyReplicas")),
        age(rc, now),
        names,
        images,
        format_labels(rc_spec.get("selector")),
    ]


def _pod_template_cells(obj: JSON, now: datetime) -> list[Any]:
    names, images = container_cells(dig(obj, "template", "spec"))
    return [name_of(obj), names, images, format_labels(dig(obj, "template", "metadata", "labels"))]


NAMESPACE_PRINTER = TablePrinter(
    columns=(name_column(), column("Status", description="Phase of the namespace."), age_column()),
    cells=lambda obj, now: [name_of(obj), status(obj).get("phase", ""), age(obj, now)],
)

CONFIGMAP_PRINTER = TablePrinter(
    columns=(name_column(), column("Data", description="Number of data and binaryData entries."), age_column()),
    cells=lambda obj, now: [name_of(obj), _count(obj.get("data")) + _count(obj.get("binaryData")), age(obj, now)],
)

SECRET_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Type", description="Type of the secret."),
        column("Data", description="Number of data entries."),
        age_column(),
    ),
    cells=lambda obj, now: [name_of(obj), obj.get("type", ""), _count(obj.get("data")), age(obj, now)],
)

SERVICE_ACCOUNT_PRINTER = TablePrinter(
    columns=(name_column(), column("Secrets", description="Number of referenced secrets."), age_column()),
    cells=lambda obj, now: [name_of(obj), _count(obj.get("secrets")), age(obj, now)],
)

RESOURCE_QUOTA_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Request", description="Used and hard amounts of the non-limit resources."),
        column("Limit", description="Used and hard amounts of the limits.* resources."),
        age_column(),
    ),
    cells=lambda obj, now: [name_of(obj), *_resource_quota_usage(obj), age(obj, now)],
)

COMPONENT_STATUS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Status", description="Health of the component."),
        column("Message", description="Message of the health condition."),
        column("Error", description="Error of the health condition."),
    ),
    cells=_component_status_cells,
)

REPLICATION_CONTROLLER_PRINTER = TablePrinter(
    columns=replica_columns("Labels of the pods managed by the controller."),
    cells=_replication_controller_cells,
)

POD_TEMPLATE_PRINTER = TablePrinter(
    columns=(
        name_column(),
        containers_column(wide_only=False),
        images_column(wide_only=False),
        column("Pod Labels", description="Labels of the pod template."),
    ),
    cells=_pod_template_cells,
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("", "Node"): NODE_PRINTER,
    ("", "Namespace"): NAMESPACE_PRINTER,
    ("", "Event"): EVENT_PRINTER,
    ("events.k8s.io", "Event"): EVENTS_API_PRINTER,
    ("", "ConfigMap"): CONFIGMAP_PRINTER,
    ("", "Secret"): SECRET_PRINTER,
    ("", "Service"): SERVICE_PRINTER,
    ("", "Endpoints"): ENDPOINTS_PRINTER,
    ("", "ServiceAccount"): SERVICE_ACCOUNT_PRINTER,
    ("", "PersistentVolume"): PV_PRINTER,
    ("", "PersistentVolumeClaim"): PVC_PRINTER,
    ("", "ResourceQuota"): RESOURCE_QUOTA_PRINTER,
    ("", "ComponentStatus"): COMPONENT_STATUS_PRINTER,
    ("", "ReplicationController"): REPLICATION_CONTROLLER_PRINTER,
    ("", "PodTemplate"): POD_TEMPLATE_PRINTER,
}
