"""Tables for cluster plumbing kinds: coordination, scheduling, RBAC, storage,
networking, discovery, admission, certificates and API registration."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._base import (
    JSON,
    NONE,
    TablePrinter,
    age,
    age_column,
    as_int,
    as_list,
    column,
    condition,
    format_label_selector,
    human_duration,
    list_with_more,
    meta,
    name_column,
    name_of,
    spec,
    status,
    wide,
)

# --------------------------------------------------------------------------
# coordination.k8s.io, scheduling.k8s.io, node.k8s.io

LEASE_PRINTER = TablePrinter(
    columns=(name_column(), column("Holder", description="Identity of the current holder."), age_column()),
    cells=lambda obj, now: [name_of(obj), spec(obj).get("holderIdentity") or "", age(obj, now)],
)

PRIORITY_CLASS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Value", "integer", "Priority given to pods of this class."),
        column("Global-Default", "boolean", "Whether this class is the cluster default."),
        age_column(),
        # Not a wide column: the server sends it with priority 0, so kubectl always shows it.
        column("PreemptionPolicy", description="Whether pods of this class may preempt others."),
    ),
    cells=lambda obj, now: [
        name_of(obj),
        as_int(obj.get("value")),
        obj.get("globalDefault") is True,
        age(obj, now),
        obj.get("preemptionPolicy") or "",
    ],
)

RUNTIME_CLASS_PRINTER = TablePrinter(
    columns=(name_column(), column("Handler", description="CRI handler of the runtime class."), age_column()),
    cells=lambda obj, now: [name_of(obj), obj.get("handler", ""), age(obj, now)],
)

# --------------------------------------------------------------------------
# rbac.authorization.k8s.io


def subjects_by_kind(subjects: Any) -> tuple[str, str, str]:
    """Users, groups and ``namespace/name`` service accounts, each joined with ``, ``."""
    users, groups, service_accounts = [], [], []
    for subject in as_list(subjects):
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            service_accounts.append(f"{subject.get('namespace', '')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(service_accounts)


def _binding_cells(obj: JSON, now: datetime) -> list[Any]:
    role_ref = obj.get("roleRef") or {}
    return [
        name_of(obj),
        f"{role_ref.get('kind', '')}/{role_ref.get('name', '')}",
        age(obj, now),
        *subjects_by_kind(obj.get("subjects")),
    ]


BINDING_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Role", description="Kind/name of the referenced role."),
        age_column(),
        wide("Users", description="Users bound to the role."),
        wide("Groups", description="Groups bound to the role."),
        wide("ServiceAccounts", description="Service accounts bound to the role."),
    ),
    cells=_binding_cells,
)

# --------------------------------------------------------------------------
# storage.k8s.io

DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _storage_class_name(obj: Mapping[str, Any]) -> str:
    annotations = meta(obj).get("annotations") or {}
    is_default = any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)
    return name_of(obj) + (" (default)" if is_default else "")


STORAGE_CLASS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Provisioner", description="Volume plugin provisioning volumes of this class."),
        column("ReclaimPolicy", description="Reclaim policy of provisioned volumes."),
        column("VolumeBindingMode", description="When volumes are bound and provisioned."),
        column("AllowVolumeExpansion", description="Whether volumes may be expanded."),
        age_column(),
    ),
    cells=lambda obj, now: [
        _storage_class_name(obj),
        obj.get("provisioner", ""),
        obj.get("reclaimPolicy") or "Delete",
        obj.get("volumeBindingMode") or "Immediate",
        obj.get("allowVolumeExpansion") is True,
        age(obj, now),
    ],
)

def _csi_driver_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    driver = spec(obj)
    tokens = driver.get("tokenRequests")
    return [
        name_of(obj),
        driver.get("attachRequired") is not False,  # unset: true
        driver.get("podInfoOnMount") is True,
        driver.get("storageCapacity") is True,
        ",".join(str((t or {}).get("audience") or "") for t in as_list(tokens)) if tokens is not None else "<unset>",
        driver.get("requiresRepublish") is True,
        ",".join(str(m) for m in as_list(driver.get("volumeLifecycleModes"))) or "<none>",
        age(obj, now),
    ]


CSI_DRIVER_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("AttachRequired", "boolean", "Whether the driver needs its volumes attached before mounting."),
        column("PodInfoOnMount", "boolean", "Whether the pod's identity is passed to the mount."),
        column("StorageCapacity", "boolean", "Whether the scheduler considers the driver's storage capacity."),
        column("TokenRequests", description="Audiences of the service-account tokens passed to the mount."),
        column("RequiresRepublish", "boolean", "Whether volumes are published again periodically."),
        column("Modes", description="The volume lifecycle modes the driver supports."),
        age_column(),
    ),
    cells=_csi_driver_cells,
)

CSI_NODE_PRINTER = TablePrinter(
    columns=(name_column(), column("Drivers", "integer", "Number of CSI drivers on the node."), age_column()),
    cells=lambda obj, now: [name_of(obj), len(as_list(spec(obj).get("drivers"))), age(obj, now)],
)

VOLUME_ATTACHMENT_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Attacher", format_="name", description="Driver handling the attachment."),
        column("PV", description="Persistent volume being attached."),
        column("Node", description="Node the volume is attached to."),
        column("Attached", "boolean", "Whether the attach operation succeeded."),
        age_column(),
    ),
    cells=lambda obj, now: [
        name_of(obj),
        spec(obj).get("attacher", ""),
        (spec(obj).get("source") or {}).get("persistentVolumeName") or "",
        spec(obj).get("nodeName", ""),
        status(obj).get("attached") is True,
        age(obj, now),
    ],
)

# --------------------------------------------------------------------------
# networking.k8s.io and discovery.k8s.io

INGRESS_SHOWN_HOSTS = 3


def ingress_hosts(ingress: Mapping[str, Any]) -> str:
    """Up to three rule hosts, ``*`` when no rule names a host."""
    rules = [r for r in as_list(spec(ingress).get("rules")) if isinstance(r, dict)]
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == INGRESS_SHOWN_HOSTS:
            more = True
        if not more and rule.get("host"):
            hosts.append(str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - INGRESS_SHOWN_HOSTS} more..." if more else text


def _ingress_address(ingress: Mapping[str, Any]) -> str:
    found = {
        str(entry.get("ip") or entry.get("hostname"))
        for entry in as_list((status(ingress).get("loadBalancer") or {}).get("ingress"))
        if isinstance(entry, dict) and (entry.get("ip") or entry.get("hostname"))
    }
    return ",".join(sorted(found))


def _ingress_class_parameters(obj: Mapping[str, Any]) -> str:
    params = spec(obj).get("parameters")
    if not isinstance(params, dict):
        return NONE
    kind = str(params.get("kind", ""))
    if params.get("apiGroup"):
        kind = f"{kind}.{params['apiGroup']}"
    return f"{kind}/{params.get('name', '')}"


def _discovery_ports(slice_: Mapping[str, Any]) -> str:
    ports = [p for p in as_list(slice_.get("ports")) if isinstance(p, dict)]
    labels = []
    for port in ports:
        if port.get("port") is not None:
            labels.append(str(as_int(port["port"])))
        elif port.get("name") is not None:
            labels.append(str(port["name"]))
        else:
            labels.append("*")
    return list_with_more(labels, len(labels))


def _discovery_endpoints(slice_: Mapping[str, Any]) -> str:
    addresses = [
        str(address)
        for endpoint in as_list(slice_.get("endpoints")) if isinstance(endpoint, dict)
        for address in as_list(endpoint.get("addresses"))
    ]
    return list_with_more(addresses, len(addresses))


INGRESS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Class", description="IngressClass of the ingress."),
        column("Hosts", description="Hosts matched by the ingress rules."),
        column("Address", description="Load-balancer addresses of the ingress."),
        column("Ports", description="Ports served by the ingress."),
        age_column(),
    ),
    cells=lambda obj, now: [
        name_of(obj),
        spec(obj).get("ingressClassName") or NONE,
        ingress_hosts(obj),
        _ingress_address(obj),
        "80, 443" if as_list(spec(obj).get("tls")) else "80",
        age(obj, now),
    ],
)

INGRESS_CLASS_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Controller", description="Controller implementing this class."),
        column("Parameters", description="Resource holding extra parameters."),
        age_column(),
    ),
    cells=lambda obj, now: [
        name_of(obj), spec(obj).get("controller", ""), _ingress_class_parameters(obj), age(obj, now)],
)

NETWORK_POLICY_PRINTER = TablePrinter(
    columns=(name_column(), column("Pod-Selector", description="Pods the policy applies to."), age_column()),
    cells=lambda obj, now: [name_of(obj), format_label_selector(spec(obj).get("podSelector")), age(obj, now)],
)

ENDPOINT_SLICE_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("AddressType", description="Address family of the endpoints."),
        column("Ports", description="Ports of the slice."),
        column("Endpoints", description="Addresses of the endpoints."),
        age_column(),
    ),
    cells=lambda obj, now: [
        name_of(obj),
        obj.get("addressType", ""),
        _discovery_ports(obj),
        _discovery_endpoints(obj),
        age(obj, now),
    ],
)

# --------------------------------------------------------------------------
# admissionregistration.k8s.io, certificates.k8s.io, apiregistration.k8s.io

WEBHOOK_CONFIGURATION_PRINTER = TablePrinter(
    columns=(name_column(), column("Webhooks", "integer", "Number of webhooks configured."), age_column()),
    cells=lambda obj, now: [name_of(obj), len(as_list(obj.get("webhooks"))), age(obj, now)],
)


def csr_condition_text(csr: Mapping[str, Any]) -> str:
    kinds = {c.get("type") for c in as_list(status(csr).get("conditions")) if isinstance(c, dict)}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if status(csr).get("certificate"):
        text += ",Issued"
    return text


def _csr_cells(csr: JSON, now: datetime) -> list[Any]:
    csr_spec = spec(csr)
    seconds = csr_spec.get("expirationSeconds")
    return [
        name_of(csr),
        age(csr, now),
        csr_spec.get("signerName") or NONE,
        csr_spec.get("username", ""),
        human_duration(as_int(seconds)) if seconds is not None else NONE,
        csr_condition_text(csr),
    ]


CSR_PRINTER = TablePrinter(
    columns=(
        name_column(),
        age_column(),
        column("SignerName", description="Signer requested for the certificate."),
        column("Requestor", description="User who created the request."),
        column("RequestedDuration", description="Requested validity of the certificate."),
        column("Condition", description="Approval and issuance state."),
    ),
    cells=_csr_cells,
)


def api_service_availability(obj: Mapping[str, Any]) -> str:
    available = condition(status(obj).get("conditions"), "Available")
    if available is None:
        return "Unknown"
    state = str(available.get("status", ""))
    if state != "True" and available.get("reason"):
        return f"{state} ({available['reason']})"
    return state


def _api_service_reference(obj: Mapping[str, Any]) -> str:
    service = spec(obj).get("service")
    if not isinstance(service, dict):
        return "Local"
    return f"{service.get('namespace', '')}/{service.get('name', '')}"


API_SERVICE_PRINTER = TablePrinter(
    columns=(
        name_column(),
        column("Service", description="Service hosting this API, or Local."),
        column("Available", description="Whether the API is available."),
        age_column(),
    ),
    cells=lambda obj, now: [name_of(obj), _api_service_reference(obj), api_service_availability(obj), age(obj, now)],
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("coordination.k8s.io", "Lease"): LEASE_PRINTER,
    ("scheduling.k8s.io", "PriorityClass"): PRIORITY_CLASS_PRINTER,
    ("node.k8s.io", "RuntimeClass"): RUNTIME_CLASS_PRINTER,
    ("rbac.authorization.k8s.io", "RoleBinding"): BINDING_PRINTER,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): BINDING_PRINTER,
    ("storage.k8s.io", "StorageClass"): STORAGE_CLASS_PRINTER,
    ("storage.k8s.io", "CSIDriver"): CSI_DRIVER_PRINTER,
    ("storage.k8s.io", "CSINode"): CSI_NODE_PRINTER,
    ("storage.k8s.io", "VolumeAttachment"): VOLUME_ATTACHMENT_PRINTER,
    ("networking.k8s.io", "Ingress"): INGRESS_PRINTER,
    ("networking.k8s.io", "IngressClass"): INGRESS_CLASS_PRINTER,
    ("networking.k8s.io", "NetworkPolicy"): NETWORK_POLICY_PRINTER,
    ("discovery.k8s.io", "EndpointSlice"): ENDPOINT_SLICE_PRINTER,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): WEBHOOK_CONFIGURATION_PRINTER,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): WEBHOOK_CONFIGURATION_PRINTER,
    ("certificates.k8s.io", "CertificateSigningRequest"): CSR_PRINTER,
    ("apiregistration.k8s.io", "APIService"): API_SERVICE_PRINTER,
}

# Kinds deliberately left to the generic NAME / CREATED AT table, as on a real
# cluster: Role, ClusterRole, LimitRange, CustomResourceDefinition, ...
