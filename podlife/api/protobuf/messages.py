"""Field tables for the Kubernetes messages kubectl 1.32 sends as protobuf.

Each message is a ``{field_number: (jsonName, type, *flags)}`` dict, written by hand from
the published ``generated.proto`` files (kubernetes/api and kubernetes/apimachinery);
field numbers are stable across releases, so one table serves every client version.
JSON names are the Go ``json:`` tags, which differ from the proto names in a few places
(``BoundObjectReference.uID`` is ``uid`` in JSON).

``type`` is one of the scalar types (``STR``, ``BYTES``, ``BOOL``, ``I32``, ``I64``), a
special type with a custom JSON form (``TIME``, ``MICROTIME``, ``QUANTITY``, ``INTORSTR``,
``RAWEXT``, ``FIELDSV1``, ``STRLIST``), ``MAP(value_type)`` for ``map<string, V>``, or the
qualified name of another message in :data:`MESSAGES` (``"core.Container"``).

Flags:

``REP``
    ``repeated``; the JSON value is a list.
``KEEP``
    emit the zero value when it is on the wire.  gogo-protobuf writes every non-pointer
    field, so a bare ``""``/``0``/``false`` normally means "unset" and is dropped, as
    ``omitempty`` would.  Pointer fields (``*int32 replicas``, ``*bool optional``) and
    fields whose JSON tag lacks ``omitempty`` are only written when set, so their zero
    value is meaningful (``replicas: 0``) and must survive.
``INLINE``
    an embedded Go struct (``json:",inline"``): its fields are merged into the parent
    object (``Probe.handler``, ``Volume.volumeSource``, ``*.localObjectReference``).

Coverage: everything reachable from the kinds in :data:`KINDS`.  Deprecated in-tree cloud
volume plugins other than GCE PD and AWS EBS are not tabled; a non-empty field missing
from a table is reported as an error rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "BOOL",
    "BYTES",
    "FIELDSV1",
    "I32",
    "I64",
    "INTORSTR",
    "KINDS",
    "MESSAGES",
    "MICROTIME",
    "QUANTITY",
    "RAWEXT",
    "SCALARS",
    "SPECIALS",
    "STR",
    "STRLIST",
    "TIME",
    "AnyVersionKinds",
    "FieldSpec",
    "MapOf",
    "compiled",
]

# Scalar types.
STR: Final = "string"
BYTES: Final = "bytes"
BOOL: Final = "bool"
I32: Final = "int32"
I64: Final = "int64"
SCALARS: Final = frozenset({STR, BYTES, BOOL, I32, I64})

# Messages with a custom JSON form (see the decoder for each one's wire layout).
TIME: Final = "@Time"  # meta.v1.Time {seconds, nanos} -> RFC3339 seconds, or null
MICROTIME: Final = "@MicroTime"  # meta.v1.MicroTime -> RFC3339 with microseconds, or null
QUANTITY: Final = "@Quantity"  # resource.Quantity {string} -> "100m"
INTORSTR: Final = "@IntOrString"  # intstr.IntOrString {type, intVal, strVal} -> 80 | "http"
RAWEXT: Final = "@RawExtension"  # runtime.RawExtension {raw} -> embedded JSON object
FIELDSV1: Final = "@FieldsV1"  # meta.v1.FieldsV1 {Raw} -> embedded JSON object
STRLIST: Final = "@StringList"  # ExtraValue / Verbs {repeated items} -> ["a", "b"]
SPECIALS: Final = frozenset({TIME, MICROTIME, QUANTITY, INTORSTR, RAWEXT, FIELDSV1, STRLIST})

REP: Final = "repeated"
KEEP: Final = "keep-zero"
INLINE: Final = "inline"


@dataclass(frozen=True, slots=True)
class MapOf:
    """``map<string, value>``; the value is a scalar, special or message type."""

    value: str


def MAP(value: str) -> MapOf:  # noqa: N802 - reads like a type constructor in the tables
    return MapOf(value)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One compiled table entry."""

    number: int
    json_name: str
    type: str | MapOf
    repeated: bool = False
    keep_zero: bool = False
    inline: bool = False


#: One message table: field number -> (jsonName, type, *flags).
Table = dict[int, tuple[Any, ...]]

# Shared shapes.
_META_ONLY: Table = {1: ("metadata", "meta.ObjectMeta")}
_LOCAL_REF: Table = {1: ("localObjectReference", "core.LocalObjectReference", INLINE)}
_CONDITION_5: Table = {  # apps/* conditions: type, status, lastTransitionTime, reason, message
    1: ("type", STR, KEEP),
    2: ("status", STR, KEEP),
    3: ("lastTransitionTime", TIME),
    4: ("reason", STR),
    5: ("message", STR),
}
_CONDITION_PROBED: Table = {  # PodCondition/JobCondition layout: + lastProbeTime
    1: ("type", STR, KEEP),
    2: ("status", STR, KEEP),
    3: ("lastProbeTime", TIME),
    4: ("lastTransitionTime", TIME),
    5: ("reason", STR),
    6: ("message", STR),
}

_META: dict[str, Table] = {
    "meta.ObjectMeta": {
        1: ("name", STR),
        2: ("generateName", STR),
        3: ("namespace", STR),
        4: ("selfLink", STR),
        5: ("uid", STR),
        6: ("resourceVersion", STR),
        7: ("generation", I64),
        8: ("creationTimestamp", TIME),
        9: ("deletionTimestamp", TIME),
        10: ("deletionGracePeriodSeconds", I64, KEEP),
        11: ("labels", MAP(STR)),
        12: ("annotations", MAP(STR)),
        13: ("ownerReferences", "meta.OwnerReference", REP),
        14: ("finalizers", STR, REP),
        17: ("managedFields", "meta.ManagedFieldsEntry", REP),
    },
    "meta.OwnerReference": {
        5: ("apiVersion", STR, KEEP),
        1: ("kind", STR, KEEP),
        3: ("name", STR, KEEP),
        4: ("uid", STR, KEEP),
        6: ("controller", BOOL, KEEP),
        7: ("blockOwnerDeletion", BOOL, KEEP),
    },
    "meta.ManagedFieldsEntry": {
        1: ("manager", STR),
        2: ("operation", STR),
        3: ("apiVersion", STR),
        4: ("time", TIME),
        6: ("fieldsType", STR),
        7: ("fieldsV1", FIELDSV1),
        8: ("subresource", STR),
    },
    "meta.LabelSelector": {
        1: ("matchLabels", MAP(STR)),
        2: ("matchExpressions", "meta.LabelSelectorRequirement", REP),
    },
    "meta.LabelSelectorRequirement": {
        1: ("key", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", STR, REP),
    },
    "meta.FieldSelectorRequirement": {
        1: ("key", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", STR, REP),
    },
    "meta.Condition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("observedGeneration", I64),
        4: ("lastTransitionTime", TIME),
        5: ("reason", STR, KEEP),
        6: ("message", STR, KEEP),
    },
    "meta.DeleteOptions": {
        1: ("gracePeriodSeconds", I64, KEEP),
        2: ("preconditions", "meta.Preconditions"),
        3: ("orphanDependents", BOOL, KEEP),
        4: ("propagationPolicy", STR, KEEP),
        5: ("dryRun", STR, REP),
        6: ("ignoreStoreReadErrorWithClusterBreakingPotential", BOOL, KEEP),
    },
    "meta.Preconditions": {1: ("uid", STR, KEEP), 2: ("resourceVersion", STR, KEEP)},
}

_CORE_WORKLOAD: dict[str, Table] = {
    "core.Pod": {**_META_ONLY, 2: ("spec", "core.PodSpec"), 3: ("status", "core.PodStatus")},
    "core.PodTemplate": {**_META_ONLY, 2: ("template", "core.PodTemplateSpec")},
    "core.PodTemplateSpec": {**_META_ONLY, 2: ("spec", "core.PodSpec")},
    "core.PodSpec": {
        1: ("volumes", "core.Volume", REP),
        20: ("initContainers", "core.Container", REP),
        2: ("containers", "core.Container", REP),
        34: ("ephemeralContainers", "core.EphemeralContainer", REP),
        3: ("restartPolicy", STR),
        4: ("terminationGracePeriodSeconds", I64, KEEP),
        5: ("activeDeadlineSeconds", I64, KEEP),
        6: ("dnsPolicy", STR),
        7: ("nodeSelector", MAP(STR)),
        8: ("serviceAccountName", STR),
        9: ("serviceAccount", STR),
        21: ("automountServiceAccountToken", BOOL, KEEP),
        10: ("nodeName", STR),
        11: ("hostNetwork", BOOL),
        12: ("hostPID", BOOL),
        13: ("hostIPC", BOOL),
        27: ("shareProcessNamespace", BOOL, KEEP),
        14: ("securityContext", "core.PodSecurityContext"),
        15: ("imagePullSecrets", "core.LocalObjectReference", REP),
        16: ("hostname", STR),
        17: ("subdomain", STR),
        18: ("affinity", "core.Affinity"),
        19: ("schedulerName", STR),
        22: ("tolerations", "core.Toleration", REP),
        23: ("hostAliases", "core.HostAlias", REP),
        24: ("priorityClassName", STR),
        25: ("priority", I32, KEEP),
        26: ("dnsConfig", "core.PodDNSConfig"),
        28: ("readinessGates", "core.PodReadinessGate", REP),
        29: ("runtimeClassName", STR, KEEP),
        30: ("enableServiceLinks", BOOL, KEEP),
        31: ("preemptionPolicy", STR, KEEP),
        32: ("overhead", MAP(QUANTITY)),
        33: ("topologySpreadConstraints", "core.TopologySpreadConstraint", REP),
        35: ("setHostnameAsFQDN", BOOL, KEEP),
        36: ("os", "core.PodOS"),
        37: ("hostUsers", BOOL, KEEP),
        38: ("schedulingGates", "core.PodSchedulingGate", REP),
        39: ("resourceClaims", "core.PodResourceClaim", REP),
        40: ("resources", "core.ResourceRequirements"),
        41: ("hostnameOverride", STR, KEEP),
        42: ("workloadRef", "core.WorkloadReference"),
    },
    # EphemeralContainerCommon reuses Container's field numbers exactly.
    "core.Container": {
        1: ("name", STR, KEEP),
        2: ("image", STR),
        3: ("command", STR, REP),
        4: ("args", STR, REP),
        5: ("workingDir", STR),
        6: ("ports", "core.ContainerPort", REP),
        19: ("envFrom", "core.EnvFromSource", REP),
        7: ("env", "core.EnvVar", REP),
        8: ("resources", "core.ResourceRequirements"),
        23: ("resizePolicy", "core.ContainerResizePolicy", REP),
        24: ("restartPolicy", STR, KEEP),
        25: ("restartPolicyRules", "core.ContainerRestartRule", REP),
        9: ("volumeMounts", "core.VolumeMount", REP),
        21: ("volumeDevices", "core.VolumeDevice", REP),
        10: ("livenessProbe", "core.Probe"),
        11: ("readinessProbe", "core.Probe"),
        22: ("startupProbe", "core.Probe"),
        12: ("lifecycle", "core.Lifecycle"),
        13: ("terminationMessagePath", STR),
        20: ("terminationMessagePolicy", STR),
        14: ("imagePullPolicy", STR),
        15: ("securityContext", "core.SecurityContext"),
        16: ("stdin", BOOL),
        17: ("stdinOnce", BOOL),
        18: ("tty", BOOL),
    },
    "core.EphemeralContainer": {
        1: ("ephemeralContainerCommon", "core.Container", INLINE),
        2: ("targetContainerName", STR),
    },
    "core.ContainerPort": {
        1: ("name", STR),
        2: ("hostPort", I32),
        3: ("containerPort", I32, KEEP),
        4: ("protocol", STR),
        5: ("hostIP", STR),
    },
    "core.ContainerResizePolicy": {1: ("resourceName", STR, KEEP), 2: ("restartPolicy", STR, KEEP)},
    "core.ContainerRestartRule": {
        1: ("action", STR, KEEP),
        2: ("exitCodes", "core.ContainerRestartRuleOnExitCodes"),
    },
    "core.ContainerRestartRuleOnExitCodes": {1: ("operator", STR, KEEP), 2: ("values", I32, REP)},
    "core.EnvFromSource": {
        1: ("prefix", STR),
        2: ("configMapRef", "core.ConfigMapEnvSource"),
        3: ("secretRef", "core.SecretEnvSource"),
    },
    "core.ConfigMapEnvSource": {**_LOCAL_REF, 2: ("optional", BOOL, KEEP)},
    "core.SecretEnvSource": {**_LOCAL_REF, 2: ("optional", BOOL, KEEP)},
    "core.EnvVar": {1: ("name", STR, KEEP), 2: ("value", STR), 3: ("valueFrom", "core.EnvVarSource")},
    "core.EnvVarSource": {
        1: ("fieldRef", "core.ObjectFieldSelector"),
        2: ("resourceFieldRef", "core.ResourceFieldSelector"),
        3: ("configMapKeyRef", "core.ConfigMapKeySelector"),
        4: ("secretKeyRef", "core.SecretKeySelector"),
        5: ("fileKeyRef", "core.FileKeySelector"),
    },
    "core.ObjectFieldSelector": {1: ("apiVersion", STR), 2: ("fieldPath", STR, KEEP)},
    "core.ResourceFieldSelector": {
        1: ("containerName", STR),
        2: ("resource", STR, KEEP),
        3: ("divisor", QUANTITY),
    },
    "core.ConfigMapKeySelector": {**_LOCAL_REF, 2: ("key", STR, KEEP), 3: ("optional", BOOL, KEEP)},
    "core.SecretKeySelector": {**_LOCAL_REF, 2: ("key", STR, KEEP), 3: ("optional", BOOL, KEEP)},
    "core.FileKeySelector": {
        1: ("volumeName", STR, KEEP),
        2: ("path", STR, KEEP),
        3: ("key", STR, KEEP),
        4: ("optional", BOOL, KEEP),
    },
    "core.ResourceRequirements": {
        1: ("limits", MAP(QUANTITY)),
        2: ("requests", MAP(QUANTITY)),
        3: ("claims", "core.ResourceClaim", REP),
    },
    "core.ResourceClaim": {1: ("name", STR, KEEP), 2: ("request", STR)},
    "core.VolumeMount": {
        1: ("name", STR, KEEP),
        2: ("readOnly", BOOL),
        7: ("recursiveReadOnly", STR, KEEP),
        3: ("mountPath", STR, KEEP),
        4: ("subPath", STR),
        5: ("mountPropagation", STR, KEEP),
        6: ("subPathExpr", STR),
    },
    "core.VolumeDevice": {1: ("name", STR, KEEP), 2: ("devicePath", STR, KEEP)},
    "core.Probe": {
        1: ("handler", "core.ProbeHandler", INLINE),
        2: ("initialDelaySeconds", I32),
        3: ("timeoutSeconds", I32),
        4: ("periodSeconds", I32),
        5: ("successThreshold", I32),
        6: ("failureThreshold", I32),
        7: ("terminationGracePeriodSeconds", I64, KEEP),
    },
    "core.ProbeHandler": {
        1: ("exec", "core.ExecAction"),
        2: ("httpGet", "core.HTTPGetAction"),
        3: ("tcpSocket", "core.TCPSocketAction"),
        4: ("grpc", "core.GRPCAction"),
    },
    "core.ExecAction": {1: ("command", STR, REP)},
    "core.HTTPGetAction": {
        1: ("path", STR),
        2: ("port", INTORSTR),
        3: ("host", STR),
        4: ("scheme", STR),
        5: ("httpHeaders", "core.HTTPHeader", REP),
    },
    "core.HTTPHeader": {1: ("name", STR, KEEP), 2: ("value", STR, KEEP)},
    "core.TCPSocketAction": {1: ("port", INTORSTR), 2: ("host", STR)},
    "core.GRPCAction": {1: ("port", I32, KEEP), 2: ("service", STR, KEEP)},
    "core.Lifecycle": {
        1: ("postStart", "core.LifecycleHandler"),
        2: ("preStop", "core.LifecycleHandler"),
        3: ("stopSignal", STR, KEEP),
    },
    "core.LifecycleHandler": {
        1: ("exec", "core.ExecAction"),
        2: ("httpGet", "core.HTTPGetAction"),
        3: ("tcpSocket", "core.TCPSocketAction"),
        4: ("sleep", "core.SleepAction"),
    },
    "core.SleepAction": {1: ("seconds", I64, KEEP)},
    "core.SecurityContext": {
        1: ("capabilities", "core.Capabilities"),
        2: ("privileged", BOOL, KEEP),
        3: ("seLinuxOptions", "core.SELinuxOptions"),
        10: ("windowsOptions", "core.WindowsSecurityContextOptions"),
        4: ("runAsUser", I64, KEEP),
        8: ("runAsGroup", I64, KEEP),
        5: ("runAsNonRoot", BOOL, KEEP),
        6: ("readOnlyRootFilesystem", BOOL, KEEP),
        7: ("allowPrivilegeEscalation", BOOL, KEEP),
        9: ("procMount", STR, KEEP),
        11: ("seccompProfile", "core.SeccompProfile"),
        12: ("appArmorProfile", "core.AppArmorProfile"),
        13: ("ulimits", "core.Ulimit", REP),
    },
    "core.PodSecurityContext": {
        1: ("seLinuxOptions", "core.SELinuxOptions"),
        8: ("windowsOptions", "core.WindowsSecurityContextOptions"),
        2: ("runAsUser", I64, KEEP),
        6: ("runAsGroup", I64, KEEP),
        3: ("runAsNonRoot", BOOL, KEEP),
        4: ("supplementalGroups", I64, REP),
        12: ("supplementalGroupsPolicy", STR, KEEP),
        5: ("fsGroup", I64, KEEP),
        7: ("sysctls", "core.Sysctl", REP),
        9: ("fsGroupChangePolicy", STR, KEEP),
        10: ("seccompProfile", "core.SeccompProfile"),
        11: ("appArmorProfile", "core.AppArmorProfile"),
        13: ("seLinuxChangePolicy", STR, KEEP),
    },
    "core.Capabilities": {1: ("add", STR, REP), 2: ("drop", STR, REP)},
    "core.SELinuxOptions": {1: ("user", STR), 2: ("role", STR), 3: ("type", STR), 4: ("level", STR)},
    "core.WindowsSecurityContextOptions": {
        1: ("gmsaCredentialSpecName", STR, KEEP),
        2: ("gmsaCredentialSpec", STR, KEEP),
        3: ("runAsUserName", STR, KEEP),
        4: ("hostProcess", BOOL, KEEP),
    },
    "core.SeccompProfile": {1: ("type", STR, KEEP), 2: ("localhostProfile", STR, KEEP)},
    "core.AppArmorProfile": {1: ("type", STR, KEEP), 2: ("localhostProfile", STR, KEEP)},
    "core.Ulimit": {1: ("name", STR, KEEP), 2: ("hard", I64, KEEP), 3: ("soft", I64, KEEP)},
    "core.Sysctl": {1: ("name", STR, KEEP), 2: ("value", STR, KEEP)},
    "core.Toleration": {
        1: ("key", STR),
        2: ("operator", STR),
        3: ("value", STR),
        4: ("effect", STR),
        5: ("tolerationSeconds", I64, KEEP),
    },
    "core.HostAlias": {1: ("ip", STR, KEEP), 2: ("hostnames", STR, REP)},
    "core.PodDNSConfig": {
        1: ("nameservers", STR, REP),
        2: ("searches", STR, REP),
        3: ("options", "core.PodDNSConfigOption", REP),
    },
    "core.PodDNSConfigOption": {1: ("name", STR), 2: ("value", STR, KEEP)},
    "core.PodReadinessGate": {1: ("conditionType", STR, KEEP)},
    "core.TopologySpreadConstraint": {
        1: ("maxSkew", I32, KEEP),
        2: ("topologyKey", STR, KEEP),
        3: ("whenUnsatisfiable", STR, KEEP),
        4: ("labelSelector", "meta.LabelSelector"),
        5: ("minDomains", I32, KEEP),
        6: ("nodeAffinityPolicy", STR, KEEP),
        7: ("nodeTaintsPolicy", STR, KEEP),
        8: ("matchLabelKeys", STR, REP),
    },
    "core.PodOS": {1: ("name", STR, KEEP)},
    "core.PodSchedulingGate": {1: ("name", STR, KEEP)},
    "core.PodResourceClaim": {
        1: ("name", STR, KEEP),
        3: ("resourceClaimName", STR, KEEP),
        4: ("resourceClaimTemplateName", STR, KEEP),
    },
    "core.WorkloadReference": {
        1: ("name", STR, KEEP),
        2: ("podGroup", STR, KEEP),
        3: ("podGroupReplicaKey", STR),
    },
    "core.Affinity": {
        1: ("nodeAffinity", "core.NodeAffinity"),
        2: ("podAffinity", "core.PodAffinity"),
        3: ("podAntiAffinity", "core.PodAffinity"),  # PodAntiAffinity has the same layout
    },
    "core.NodeAffinity": {
        1: ("requiredDuringSchedulingIgnoredDuringExecution", "core.NodeSelector"),
        2: ("preferredDuringSchedulingIgnoredDuringExecution", "core.PreferredSchedulingTerm", REP),
    },
    "core.NodeSelector": {1: ("nodeSelectorTerms", "core.NodeSelectorTerm", REP)},
    "core.NodeSelectorTerm": {
        1: ("matchExpressions", "core.NodeSelectorRequirement", REP),
        2: ("matchFields", "core.NodeSelectorRequirement", REP),
    },
    "core.NodeSelectorRequirement": {
        1: ("key", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", STR, REP),
    },
    "core.PreferredSchedulingTerm": {1: ("weight", I32, KEEP), 2: ("preference", "core.NodeSelectorTerm")},
    "core.PodAffinity": {
        1: ("requiredDuringSchedulingIgnoredDuringExecution", "core.PodAffinityTerm", REP),
        2: ("preferredDuringSchedulingIgnoredDuringExecution", "core.WeightedPodAffinityTerm", REP),
    },
    "core.PodAffinityTerm": {
        1: ("labelSelector", "meta.LabelSelector"),
        2: ("namespaces", STR, REP),
        3: ("topologyKey", STR, KEEP),
        4: ("namespaceSelector", "meta.LabelSelector"),
        5: ("matchLabelKeys", STR, REP),
        6: ("mismatchLabelKeys", STR, REP),
    },
    "core.WeightedPodAffinityTerm": {1: ("weight", I32, KEEP), 2: ("podAffinityTerm", "core.PodAffinityTerm")},
}

_CORE_VOLUMES: dict[str, Table] = {
    "core.Volume": {1: ("name", STR, KEEP), 2: ("volumeSource", "core.VolumeSource", INLINE)},
    "core.VolumeSource": {
        1: ("hostPath", "core.HostPathVolumeSource"),
        2: ("emptyDir", "core.EmptyDirVolumeSource"),
        3: ("gcePersistentDisk", "core.GCEPersistentDiskVolumeSource"),
        4: ("awsElasticBlockStore", "core.AWSElasticBlockStoreVolumeSource"),
        5: ("gitRepo", "core.GitRepoVolumeSource"),
        6: ("secret", "core.SecretVolumeSource"),
        7: ("nfs", "core.NFSVolumeSource"),
        8: ("iscsi", "core.ISCSIVolumeSource"),
        10: ("persistentVolumeClaim", "core.PersistentVolumeClaimVolumeSource"),
        16: ("downwardAPI", "core.DownwardAPIVolumeSource"),
        17: ("fc", "core.FCVolumeSource"),
        19: ("configMap", "core.ConfigMapVolumeSource"),
        26: ("projected", "core.ProjectedVolumeSource"),
        28: ("csi", "core.CSIVolumeSource"),
        29: ("ephemeral", "core.EphemeralVolumeSource"),
        30: ("image", "core.ImageVolumeSource"),
    },
    "core.HostPathVolumeSource": {1: ("path", STR, KEEP), 2: ("type", STR, KEEP)},
    "core.EmptyDirVolumeSource": {1: ("medium", STR), 2: ("sizeLimit", QUANTITY)},
    "core.GCEPersistentDiskVolumeSource": {
        1: ("pdName", STR, KEEP),
        2: ("fsType", STR),
        3: ("partition", I32),
        4: ("readOnly", BOOL),
    },
    "core.AWSElasticBlockStoreVolumeSource": {
        1: ("volumeID", STR, KEEP),
        2: ("fsType", STR),
        3: ("partition", I32),
        4: ("readOnly", BOOL),
    },
    "core.GitRepoVolumeSource": {1: ("repository", STR, KEEP), 2: ("revision", STR), 3: ("directory", STR)},
    "core.SecretVolumeSource": {
        1: ("secretName", STR),
        2: ("items", "core.KeyToPath", REP),
        3: ("defaultMode", I32, KEEP),
        4: ("optional", BOOL, KEEP),
    },
    "core.ConfigMapVolumeSource": {
        **_LOCAL_REF,
        2: ("items", "core.KeyToPath", REP),
        3: ("defaultMode", I32, KEEP),
        4: ("optional", BOOL, KEEP),
    },
    "core.KeyToPath": {1: ("key", STR, KEEP), 2: ("path", STR, KEEP), 3: ("mode", I32, KEEP)},
    "core.NFSVolumeSource": {1: ("server", STR, KEEP), 2: ("path", STR, KEEP), 3: ("readOnly", BOOL)},
    "core.ISCSIVolumeSource": {
        1: ("targetPortal", STR, KEEP),
        2: ("iqn", STR, KEEP),
        3: ("lun", I32, KEEP),
        4: ("iscsiInterface", STR),
        5: ("fsType", STR),
        6: ("readOnly", BOOL),
        7: ("portals", STR, REP),
        8: ("chapAuthDiscovery", BOOL),
        11: ("chapAuthSession", BOOL),
        10: ("secretRef", "core.LocalObjectReference"),
        12: ("initiatorName", STR, KEEP),
    },
    "core.PersistentVolumeClaimVolumeSource": {1: ("claimName", STR, KEEP), 2: ("readOnly", BOOL)},
    "core.DownwardAPIVolumeSource": {
        1: ("items", "core.DownwardAPIVolumeFile", REP),
        2: ("defaultMode", I32, KEEP),
    },
    "core.DownwardAPIVolumeFile": {
        1: ("path", STR, KEEP),
        2: ("fieldRef", "core.ObjectFieldSelector"),
        3: ("resourceFieldRef", "core.ResourceFieldSelector"),
        4: ("mode", I32, KEEP),
    },
    "core.FCVolumeSource": {
        1: ("targetWWNs", STR, REP),
        2: ("lun", I32, KEEP),
        3: ("fsType", STR),
        4: ("readOnly", BOOL),
        5: ("wwids", STR, REP),
    },
    "core.ProjectedVolumeSource": {
        1: ("sources", "core.VolumeProjection", REP),
        2: ("defaultMode", I32, KEEP),
    },
    "core.VolumeProjection": {
        1: ("secret", "core.SecretProjection"),
        2: ("downwardAPI", "core.DownwardAPIProjection"),
        3: ("configMap", "core.ConfigMapProjection"),
        4: ("serviceAccountToken", "core.ServiceAccountTokenProjection"),
        5: ("clusterTrustBundle", "core.ClusterTrustBundleProjection"),
        6: ("podCertificate", "core.PodCertificateProjection"),
    },
    "core.SecretProjection": {**_LOCAL_REF, 2: ("items", "core.KeyToPath", REP), 4: ("optional", BOOL, KEEP)},
    "core.ConfigMapProjection": {**_LOCAL_REF, 2: ("items", "core.KeyToPath", REP), 4: ("optional", BOOL, KEEP)},
    "core.DownwardAPIProjection": {1: ("items", "core.DownwardAPIVolumeFile", REP)},
    "core.ServiceAccountTokenProjection": {
        1: ("audience", STR),
        2: ("expirationSeconds", I64, KEEP),
        3: ("path", STR, KEEP),
    },
    "core.ClusterTrustBundleProjection": {
        1: ("name", STR, KEEP),
        2: ("signerName", STR, KEEP),
        3: ("labelSelector", "meta.LabelSelector"),
        5: ("optional", BOOL, KEEP),
        4: ("path", STR, KEEP),
    },
    "core.PodCertificateProjection": {
        1: ("signerName", STR),
        2: ("keyType", STR),
        3: ("maxExpirationSeconds", I32, KEEP),
        4: ("credentialBundlePath", STR),
        5: ("keyPath", STR),
        6: ("certificateChainPath", STR),
        7: ("userAnnotations", MAP(STR)),
    },
    "core.CSIVolumeSource": {
        1: ("driver", STR, KEEP),
        2: ("readOnly", BOOL, KEEP),
        3: ("fsType", STR, KEEP),
        4: ("volumeAttributes", MAP(STR)),
        5: ("nodePublishSecretRef", "core.LocalObjectReference"),
    },
    "core.EphemeralVolumeSource": {1: ("volumeClaimTemplate", "core.PersistentVolumeClaimTemplate")},
    "core.PersistentVolumeClaimTemplate": {**_META_ONLY, 2: ("spec", "core.PersistentVolumeClaimSpec")},
    "core.PersistentVolumeClaimSpec": {
        1: ("accessModes", STR, REP),
        4: ("selector", "meta.LabelSelector"),
        2: ("resources", "core.VolumeResourceRequirements"),
        3: ("volumeName", STR),
        5: ("storageClassName", STR, KEEP),
        6: ("volumeMode", STR, KEEP),
        7: ("dataSource", "core.TypedLocalObjectReference"),
        8: ("dataSourceRef", "core.TypedObjectReference"),
        9: ("volumeAttributesClassName", STR, KEEP),
    },
    "core.VolumeResourceRequirements": {1: ("limits", MAP(QUANTITY)), 2: ("requests", MAP(QUANTITY))},
    "core.TypedLocalObjectReference": {1: ("apiGroup", STR, KEEP), 2: ("kind", STR, KEEP), 3: ("name", STR, KEEP)},
    "core.TypedObjectReference": {
        1: ("apiGroup", STR, KEEP),
        2: ("kind", STR, KEEP),
        3: ("name", STR, KEEP),
        4: ("namespace", STR, KEEP),
    },
    "core.ImageVolumeSource": {1: ("reference", STR), 2: ("pullPolicy", STR)},
}

_CORE_POD_STATUS: dict[str, Table] = {
    "core.PodStatus": {
        17: ("observedGeneration", I64),
        1: ("phase", STR),
        2: ("conditions", "core.PodCondition", REP),
        3: ("message", STR),
        4: ("reason", STR),
        11: ("nominatedNodeName", STR),
        5: ("hostIP", STR),
        16: ("hostIPs", "core.HostIP", REP),
        6: ("podIP", STR),
        12: ("podIPs", "core.PodIP", REP),
        7: ("startTime", TIME),
        10: ("initContainerStatuses", "core.ContainerStatus", REP),
        8: ("containerStatuses", "core.ContainerStatus", REP),
        9: ("qosClass", STR),
        13: ("ephemeralContainerStatuses", "core.ContainerStatus", REP),
        14: ("resize", STR),
        15: ("resourceClaimStatuses", "core.PodResourceClaimStatus", REP),
        18: ("extendedResourceClaimStatus", "core.PodExtendedResourceClaimStatus"),
        19: ("allocatedResources", MAP(QUANTITY)),
        20: ("resources", "core.ResourceRequirements"),
    },
    "core.PodCondition": {**_CONDITION_PROBED, 7: ("observedGeneration", I64)},
    "core.HostIP": {1: ("ip", STR, KEEP)},
    "core.PodIP": {1: ("ip", STR, KEEP)},
    "core.ContainerStatus": {
        1: ("name", STR, KEEP),
        2: ("state", "core.ContainerState"),
        3: ("lastState", "core.ContainerState"),
        4: ("ready", BOOL, KEEP),
        5: ("restartCount", I32, KEEP),
        6: ("image", STR, KEEP),
        7: ("imageID", STR, KEEP),
        8: ("containerID", STR),
        9: ("started", BOOL, KEEP),
        10: ("allocatedResources", MAP(QUANTITY)),
        11: ("resources", "core.ResourceRequirements"),
        12: ("volumeMounts", "core.VolumeMountStatus", REP),
        13: ("user", "core.ContainerUser"),
        14: ("allocatedResourcesStatus", "core.ResourceStatus", REP),
        15: ("stopSignal", STR, KEEP),
    },
    "core.ContainerState": {
        1: ("waiting", "core.ContainerStateWaiting"),
        2: ("running", "core.ContainerStateRunning"),
        3: ("terminated", "core.ContainerStateTerminated"),
    },
    "core.ContainerStateWaiting": {1: ("reason", STR), 2: ("message", STR)},
    "core.ContainerStateRunning": {1: ("startedAt", TIME)},
    "core.ContainerStateTerminated": {
        1: ("exitCode", I32, KEEP),
        2: ("signal", I32),
        3: ("reason", STR),
        4: ("message", STR),
        5: ("startedAt", TIME),
        6: ("finishedAt", TIME),
        7: ("containerID", STR),
    },
    "core.VolumeMountStatus": {
        1: ("name", STR, KEEP),
        2: ("mountPath", STR, KEEP),
        3: ("readOnly", BOOL),
        4: ("recursiveReadOnly", STR, KEEP),
        5: ("volumeStatus", "core.VolumeStatus"),
    },
    "core.VolumeStatus": {1: ("image", "core.ImageVolumeStatus")},
    "core.ImageVolumeStatus": {1: ("imageRef", STR, KEEP)},
    "core.ContainerUser": {1: ("linux", "core.LinuxContainerUser")},
    "core.LinuxContainerUser": {1: ("uid", I64, KEEP), 2: ("gid", I64, KEEP), 3: ("supplementalGroups", I64, REP)},
    "core.ResourceStatus": {1: ("name", STR, KEEP), 2: ("resources", "core.ResourceHealth", REP)},
    "core.ResourceHealth": {1: ("resourceID", STR, KEEP), 2: ("health", STR), 6: ("message", STR, KEEP)},
    "core.PodResourceClaimStatus": {1: ("name", STR, KEEP), 2: ("resourceClaimName", STR, KEEP)},
    "core.PodExtendedResourceClaimStatus": {
        1: ("requestMappings", "core.ContainerExtendedResourceRequest", REP),
        2: ("resourceClaimName", STR, KEEP),
    },
    "core.ContainerExtendedResourceRequest": {
        1: ("containerName", STR, KEEP),
        2: ("resourceName", STR, KEEP),
        3: ("requestName", STR, KEEP),
    },
}

_CORE_OTHER: dict[str, Table] = {
    "core.Namespace": {**_META_ONLY, 2: ("spec", "core.NamespaceSpec"), 3: ("status", "core.NamespaceStatus")},
    "core.NamespaceSpec": {1: ("finalizers", STR, REP)},
    "core.NamespaceStatus": {1: ("phase", STR), 2: ("conditions", "core.NamespaceCondition", REP)},
    "core.NamespaceCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        4: ("lastTransitionTime", TIME),
        5: ("reason", STR),
        6: ("message", STR),
    },
    "core.ConfigMap": {
        **_META_ONLY,
        4: ("immutable", BOOL, KEEP),
        2: ("data", MAP(STR)),
        3: ("binaryData", MAP(BYTES)),
    },
    "core.Secret": {
        **_META_ONLY,
        5: ("immutable", BOOL, KEEP),
        2: ("data", MAP(BYTES)),
        4: ("stringData", MAP(STR)),
        3: ("type", STR),
    },
    "core.ServiceAccount": {
        **_META_ONLY,
        2: ("secrets", "core.ObjectReference", REP),
        3: ("imagePullSecrets", "core.LocalObjectReference", REP),
        4: ("automountServiceAccountToken", BOOL, KEEP),
    },
    "core.ObjectReference": {
        1: ("kind", STR),
        2: ("namespace", STR),
        3: ("name", STR),
        4: ("uid", STR),
        5: ("apiVersion", STR),
        6: ("resourceVersion", STR),
        7: ("fieldPath", STR),
    },
    "core.LocalObjectReference": {1: ("name", STR)},
    "core.Event": {
        **_META_ONLY,
        2: ("involvedObject", "core.ObjectReference"),
        3: ("reason", STR),
        4: ("message", STR),
        5: ("source", "core.EventSource"),
        6: ("firstTimestamp", TIME),
        7: ("lastTimestamp", TIME),
        8: ("count", I32),
        9: ("type", STR),
        10: ("eventTime", MICROTIME),
        11: ("series", "core.EventSeries"),
        12: ("action", STR),
        13: ("related", "core.ObjectReference"),
        14: ("reportingComponent", STR, KEEP),
        15: ("reportingInstance", STR, KEEP),
    },
    "core.EventSource": {1: ("component", STR), 2: ("host", STR)},
    "core.EventSeries": {1: ("count", I32), 2: ("lastObservedTime", MICROTIME)},
    "core.Service": {**_META_ONLY, 2: ("spec", "core.ServiceSpec"), 3: ("status", "core.ServiceStatus")},
    "core.ServiceSpec": {
        1: ("ports", "core.ServicePort", REP),
        2: ("selector", MAP(STR)),
        3: ("clusterIP", STR),
        18: ("clusterIPs", STR, REP),
        4: ("type", STR),
        5: ("externalIPs", STR, REP),
        7: ("sessionAffinity", STR),
        8: ("loadBalancerIP", STR),
        9: ("loadBalancerSourceRanges", STR, REP),
        10: ("externalName", STR),
        11: ("externalTrafficPolicy", STR),
        12: ("healthCheckNodePort", I32),
        13: ("publishNotReadyAddresses", BOOL),
        14: ("sessionAffinityConfig", "core.SessionAffinityConfig"),
        19: ("ipFamilies", STR, REP),
        17: ("ipFamilyPolicy", STR, KEEP),
        20: ("allocateLoadBalancerNodePorts", BOOL, KEEP),
        21: ("loadBalancerClass", STR, KEEP),
        22: ("internalTrafficPolicy", STR, KEEP),
        23: ("trafficDistribution", STR, KEEP),
    },
    "core.ServicePort": {
        1: ("name", STR),
        2: ("protocol", STR),
        6: ("appProtocol", STR, KEEP),
        3: ("port", I32, KEEP),
        4: ("targetPort", INTORSTR),
        5: ("nodePort", I32),
    },
    "core.SessionAffinityConfig": {1: ("clientIP", "core.ClientIPConfig")},
    "core.ClientIPConfig": {1: ("timeoutSeconds", I32, KEEP)},
    "core.ServiceStatus": {
        1: ("loadBalancer", "core.LoadBalancerStatus"),
        2: ("conditions", "meta.Condition", REP),
    },
    "core.LoadBalancerStatus": {1: ("ingress", "core.LoadBalancerIngress", REP)},
    "core.LoadBalancerIngress": {
        1: ("ip", STR),
        2: ("hostname", STR),
        3: ("ipMode", STR, KEEP),
        4: ("ports", "core.PortStatus", REP),
    },
    "core.PortStatus": {1: ("port", I32, KEEP), 2: ("protocol", STR, KEEP), 3: ("error", STR, KEEP)},
    "core.ResourceQuota": {
        **_META_ONLY,
        2: ("spec", "core.ResourceQuotaSpec"),
        3: ("status", "core.ResourceQuotaStatus"),
    },
    "core.ResourceQuotaSpec": {
        1: ("hard", MAP(QUANTITY)),
        2: ("scopes", STR, REP),
        3: ("scopeSelector", "core.ScopeSelector"),
    },
    "core.ScopeSelector": {1: ("matchExpressions", "core.ScopedResourceSelectorRequirement", REP)},
    "core.ScopedResourceSelectorRequirement": {
        1: ("scopeName", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", STR, REP),
    },
    "core.ResourceQuotaStatus": {1: ("hard", MAP(QUANTITY)), 2: ("used", MAP(QUANTITY))},
}

_APPS: dict[str, Table] = {
    "apps.ControllerRevision": {**_META_ONLY, 2: ("data", RAWEXT), 3: ("revision", I64, KEEP)},
    "apps.Deployment": {**_META_ONLY, 2: ("spec", "apps.DeploymentSpec"), 3: ("status", "apps.DeploymentStatus")},
    "apps.DeploymentSpec": {
        1: ("replicas", I32, KEEP),
        2: ("selector", "meta.LabelSelector"),
        3: ("template", "core.PodTemplateSpec"),
        4: ("strategy", "apps.DeploymentStrategy"),
        5: ("minReadySeconds", I32),
        6: ("revisionHistoryLimit", I32, KEEP),
        7: ("paused", BOOL),
        9: ("progressDeadlineSeconds", I32, KEEP),
        10: ("podReplacementPolicy", STR, KEEP),
    },
    "apps.DeploymentStrategy": {1: ("type", STR), 2: ("rollingUpdate", "apps.RollingUpdate")},
    # RollingUpdateDeployment and RollingUpdateDaemonSet share this layout.
    "apps.RollingUpdate": {1: ("maxUnavailable", INTORSTR), 2: ("maxSurge", INTORSTR)},
    "apps.DeploymentStatus": {
        1: ("observedGeneration", I64),
        2: ("replicas", I32),
        3: ("updatedReplicas", I32),
        7: ("readyReplicas", I32),
        4: ("availableReplicas", I32),
        5: ("unavailableReplicas", I32),
        9: ("terminatingReplicas", I32, KEEP),
        6: ("conditions", "apps.DeploymentCondition", REP),
        8: ("collisionCount", I32, KEEP),
    },
    "apps.DeploymentCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        6: ("lastUpdateTime", TIME),
        7: ("lastTransitionTime", TIME),
        4: ("reason", STR),
        5: ("message", STR),
    },
    "apps.ReplicaSet": {**_META_ONLY, 2: ("spec", "apps.ReplicaSetSpec"), 3: ("status", "apps.ReplicaSetStatus")},
    "apps.ReplicaSetSpec": {
        1: ("replicas", I32, KEEP),
        4: ("minReadySeconds", I32),
        2: ("selector", "meta.LabelSelector"),
        3: ("template", "core.PodTemplateSpec"),
    },
    "apps.ReplicaSetStatus": {
        1: ("replicas", I32, KEEP),
        2: ("fullyLabeledReplicas", I32),
        4: ("readyReplicas", I32),
        5: ("availableReplicas", I32),
        7: ("terminatingReplicas", I32, KEEP),
        3: ("observedGeneration", I64),
        6: ("conditions", "apps.WorkloadCondition", REP),
    },
    "apps.WorkloadCondition": _CONDITION_5,
    "apps.DaemonSet": {**_META_ONLY, 2: ("spec", "apps.DaemonSetSpec"), 3: ("status", "apps.DaemonSetStatus")},
    "apps.DaemonSetSpec": {
        1: ("selector", "meta.LabelSelector"),
        2: ("template", "core.PodTemplateSpec"),
        3: ("updateStrategy", "apps.DaemonSetUpdateStrategy"),
        4: ("minReadySeconds", I32),
        6: ("revisionHistoryLimit", I32, KEEP),
    },
    "apps.DaemonSetUpdateStrategy": {1: ("type", STR), 2: ("rollingUpdate", "apps.RollingUpdate")},
    "apps.DaemonSetStatus": {
        1: ("currentNumberScheduled", I32, KEEP),
        2: ("numberMisscheduled", I32, KEEP),
        3: ("desiredNumberScheduled", I32, KEEP),
        4: ("numberReady", I32, KEEP),
        5: ("observedGeneration", I64),
        6: ("updatedNumberScheduled", I32),
        7: ("numberAvailable", I32),
        8: ("numberUnavailable", I32),
        9: ("collisionCount", I32, KEEP),
        10: ("conditions", "apps.WorkloadCondition", REP),
    },
}

_BATCH: dict[str, Table] = {
    "batch.Job": {**_META_ONLY, 2: ("spec", "batch.JobSpec"), 3: ("status", "batch.JobStatus")},
    "batch.JobSpec": {
        1: ("parallelism", I32, KEEP),
        2: ("completions", I32, KEEP),
        3: ("activeDeadlineSeconds", I64, KEEP),
        11: ("podFailurePolicy", "batch.PodFailurePolicy"),
        16: ("successPolicy", "batch.SuccessPolicy"),
        7: ("backoffLimit", I32, KEEP),
        12: ("backoffLimitPerIndex", I32, KEEP),
        13: ("maxFailedIndexes", I32, KEEP),
        4: ("selector", "meta.LabelSelector"),
        5: ("manualSelector", BOOL, KEEP),
        6: ("template", "core.PodTemplateSpec"),
        8: ("ttlSecondsAfterFinished", I32, KEEP),
        9: ("completionMode", STR, KEEP),
        10: ("suspend", BOOL, KEEP),
        14: ("podReplacementPolicy", STR, KEEP),
        15: ("managedBy", STR, KEEP),
    },
    "batch.JobStatus": {
        1: ("conditions", "batch.JobCondition", REP),
        2: ("startTime", TIME),
        3: ("completionTime", TIME),
        4: ("active", I32),
        5: ("succeeded", I32),
        6: ("failed", I32),
        11: ("terminating", I32, KEEP),
        7: ("completedIndexes", STR),
        10: ("failedIndexes", STR, KEEP),
        8: ("uncountedTerminatedPods", "batch.UncountedTerminatedPods"),
        9: ("ready", I32, KEEP),
    },
    "batch.JobCondition": _CONDITION_PROBED,
    "batch.UncountedTerminatedPods": {1: ("succeeded", STR, REP), 2: ("failed", STR, REP)},
    "batch.PodFailurePolicy": {1: ("rules", "batch.PodFailurePolicyRule", REP)},
    "batch.PodFailurePolicyRule": {
        1: ("action", STR, KEEP),
        2: ("onExitCodes", "batch.PodFailurePolicyOnExitCodesRequirement"),
        3: ("onPodConditions", "batch.PodFailurePolicyOnPodConditionsPattern", REP),
    },
    "batch.PodFailurePolicyOnExitCodesRequirement": {
        1: ("containerName", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", I32, REP),
    },
    "batch.PodFailurePolicyOnPodConditionsPattern": {1: ("type", STR, KEEP), 2: ("status", STR)},
    "batch.SuccessPolicy": {1: ("rules", "batch.SuccessPolicyRule", REP)},
    "batch.SuccessPolicyRule": {1: ("succeededIndexes", STR, KEEP), 2: ("succeededCount", I32, KEEP)},
    "batch.CronJob": {**_META_ONLY, 2: ("spec", "batch.CronJobSpec"), 3: ("status", "batch.CronJobStatus")},
    "batch.CronJobSpec": {
        1: ("schedule", STR, KEEP),
        8: ("timeZone", STR, KEEP),
        2: ("startingDeadlineSeconds", I64, KEEP),
        3: ("concurrencyPolicy", STR),
        4: ("suspend", BOOL, KEEP),
        5: ("jobTemplate", "batch.JobTemplateSpec"),
        6: ("successfulJobsHistoryLimit", I32, KEEP),
        7: ("failedJobsHistoryLimit", I32, KEEP),
    },
    "batch.JobTemplateSpec": {**_META_ONLY, 2: ("spec", "batch.JobSpec")},
    "batch.CronJobStatus": {
        1: ("active", "core.ObjectReference", REP),
        4: ("lastScheduleTime", TIME),
        5: ("lastSuccessfulTime", TIME),
    },
}

_RBAC: dict[str, Table] = {
    "rbac.Role": {**_META_ONLY, 2: ("rules", "rbac.PolicyRule", REP)},
    "rbac.ClusterRole": {
        **_META_ONLY,
        2: ("rules", "rbac.PolicyRule", REP),
        3: ("aggregationRule", "rbac.AggregationRule"),
    },
    "rbac.PolicyRule": {
        1: ("verbs", STR, REP),
        2: ("apiGroups", STR, REP),
        3: ("resources", STR, REP),
        4: ("resourceNames", STR, REP),
        5: ("nonResourceURLs", STR, REP),
    },
    "rbac.AggregationRule": {1: ("clusterRoleSelectors", "meta.LabelSelector", REP)},
    # RoleBinding and ClusterRoleBinding share this layout.
    "rbac.Binding": {**_META_ONLY, 2: ("subjects", "rbac.Subject", REP), 3: ("roleRef", "rbac.RoleRef")},
    "rbac.RoleRef": {1: ("apiGroup", STR, KEEP), 2: ("kind", STR, KEEP), 3: ("name", STR, KEEP)},
    "rbac.Subject": {1: ("kind", STR, KEEP), 2: ("apiGroup", STR), 3: ("name", STR, KEEP), 4: ("namespace", STR)},
}

_POLICY_SCHEDULING: dict[str, Table] = {
    "policy.Eviction": {**_META_ONLY, 2: ("deleteOptions", "meta.DeleteOptions")},
    "policy.PodDisruptionBudget": {
        **_META_ONLY,
        2: ("spec", "policy.PodDisruptionBudgetSpec"),
        3: ("status", "policy.PodDisruptionBudgetStatus"),
    },
    "policy.PodDisruptionBudgetSpec": {
        1: ("minAvailable", INTORSTR),
        2: ("selector", "meta.LabelSelector"),
        3: ("maxUnavailable", INTORSTR),
        4: ("unhealthyPodEvictionPolicy", STR, KEEP),
    },
    "policy.PodDisruptionBudgetStatus": {
        1: ("observedGeneration", I64),
        2: ("disruptedPods", MAP(TIME)),
        3: ("disruptionsAllowed", I32, KEEP),
        4: ("currentHealthy", I32, KEEP),
        5: ("desiredHealthy", I32, KEEP),
        6: ("expectedPods", I32, KEEP),
        7: ("conditions", "meta.Condition", REP),
    },
    "scheduling.PriorityClass": {
        **_META_ONLY,
        2: ("value", I32, KEEP),
        3: ("globalDefault", BOOL),
        4: ("description", STR),
        5: ("preemptionPolicy", STR, KEEP),
    },
}

_AUTH: dict[str, Table] = {
    "authn.TokenRequest": {
        **_META_ONLY,
        2: ("spec", "authn.TokenRequestSpec"),
        3: ("status", "authn.TokenRequestStatus"),
    },
    "authn.TokenRequestSpec": {
        1: ("audiences", STR, REP),
        4: ("expirationSeconds", I64, KEEP),
        3: ("boundObjectRef", "authn.BoundObjectReference"),
    },
    "authn.BoundObjectReference": {1: ("kind", STR), 2: ("apiVersion", STR), 3: ("name", STR), 4: ("uid", STR)},
    "authn.TokenRequestStatus": {1: ("token", STR, KEEP), 2: ("expirationTimestamp", TIME)},
    "authn.TokenReview": {**_META_ONLY, 2: ("spec", "authn.TokenReviewSpec"), 3: ("status", "authn.TokenReviewStatus")},
    "authn.TokenReviewSpec": {1: ("token", STR), 2: ("audiences", STR, REP)},
    "authn.TokenReviewStatus": {
        1: ("authenticated", BOOL),
        2: ("user", "authn.UserInfo"),
        4: ("audiences", STR, REP),
        3: ("error", STR),
    },
    "authn.SelfSubjectReview": {**_META_ONLY, 2: ("status", "authn.SelfSubjectReviewStatus")},
    "authn.SelfSubjectReviewStatus": {1: ("userInfo", "authn.UserInfo")},
    "authn.UserInfo": {1: ("username", STR), 2: ("uid", STR), 3: ("groups", STR, REP), 4: ("extra", MAP(STRLIST))},
    "authz.SelfSubjectAccessReview": {
        **_META_ONLY,
        2: ("spec", "authz.SelfSubjectAccessReviewSpec"),
        3: ("status", "authz.SubjectAccessReviewStatus"),
    },
    "authz.SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "authz.ResourceAttributes"),
        2: ("nonResourceAttributes", "authz.NonResourceAttributes"),
    },
    # SubjectAccessReview and LocalSubjectAccessReview share this layout.
    "authz.SubjectAccessReview": {
        **_META_ONLY,
        2: ("spec", "authz.SubjectAccessReviewSpec"),
        3: ("status", "authz.SubjectAccessReviewStatus"),
    },
    "authz.SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "authz.ResourceAttributes"),
        2: ("nonResourceAttributes", "authz.NonResourceAttributes"),
        3: ("user", STR),
        4: ("groups", STR, REP),
        5: ("extra", MAP(STRLIST)),
        6: ("uid", STR),
    },
    "authz.ResourceAttributes": {
        1: ("namespace", STR),
        2: ("verb", STR),
        3: ("group", STR),
        4: ("version", STR),
        5: ("resource", STR),
        6: ("subresource", STR),
        7: ("name", STR),
        8: ("fieldSelector", "authz.FieldSelectorAttributes"),
        9: ("labelSelector", "authz.LabelSelectorAttributes"),
    },
    "authz.FieldSelectorAttributes": {
        1: ("rawSelector", STR),
        2: ("requirements", "meta.FieldSelectorRequirement", REP),
    },
    "authz.LabelSelectorAttributes": {
        1: ("rawSelector", STR),
        2: ("requirements", "meta.LabelSelectorRequirement", REP),
    },
    "authz.NonResourceAttributes": {1: ("path", STR), 2: ("verb", STR)},
    "authz.SubjectAccessReviewStatus": {
        1: ("allowed", BOOL, KEEP),
        4: ("denied", BOOL),
        2: ("reason", STR),
        3: ("evaluationError", STR),
    },
    "authz.SelfSubjectRulesReview": {
        **_META_ONLY,
        2: ("spec", "authz.SelfSubjectRulesReviewSpec"),
        3: ("status", "authz.SubjectRulesReviewStatus"),
    },
    "authz.SelfSubjectRulesReviewSpec": {1: ("namespace", STR)},
    "authz.SubjectRulesReviewStatus": {
        1: ("resourceRules", "authz.ResourceRule", REP),
        2: ("nonResourceRules", "authz.NonResourceRule", REP),
        3: ("incomplete", BOOL, KEEP),
        4: ("evaluationError", STR),
    },
    "authz.ResourceRule": {
        1: ("verbs", STR, REP),
        2: ("apiGroups", STR, REP),
        3: ("resources", STR, REP),
        4: ("resourceNames", STR, REP),
    },
    "authz.NonResourceRule": {1: ("verbs", STR, REP), 2: ("nonResourceURLs", STR, REP)},
}

_AUTOSCALING: dict[str, Table] = {
    "autoscaling.Scale": {**_META_ONLY, 2: ("spec", "autoscaling.ScaleSpec"), 3: ("status", "autoscaling.ScaleStatus")},
    "autoscaling.ScaleSpec": {1: ("replicas", I32)},
    "autoscaling.ScaleStatus": {1: ("replicas", I32, KEEP), 2: ("selector", STR)},
    "autoscaling.HorizontalPodAutoscaler": {
        **_META_ONLY,
        2: ("spec", "autoscaling.HorizontalPodAutoscalerSpec"),
        3: ("status", "autoscaling.HorizontalPodAutoscalerStatus"),
    },
    "autoscaling.HorizontalPodAutoscalerSpec": {
        1: ("scaleTargetRef", "autoscaling.CrossVersionObjectReference"),
        2: ("minReplicas", I32, KEEP),
        3: ("maxReplicas", I32, KEEP),
        4: ("targetCPUUtilizationPercentage", I32, KEEP),
    },
    "autoscaling.CrossVersionObjectReference": {1: ("kind", STR, KEEP), 2: ("name", STR, KEEP), 3: ("apiVersion", STR)},
    "autoscaling.HorizontalPodAutoscalerStatus": {
        1: ("observedGeneration", I64, KEEP),
        2: ("lastScaleTime", TIME),
        3: ("currentReplicas", I32, KEEP),
        4: ("desiredReplicas", I32, KEEP),
        5: ("currentCPUUtilizationPercentage", I32, KEEP),
    },
}

_TABLES: dict[str, Table] = {
    **_META,
    **_CORE_WORKLOAD,
    **_CORE_VOLUMES,
    **_CORE_POD_STATUS,
    **_CORE_OTHER,
    **_APPS,
    **_BATCH,
    **_RBAC,
    **_POLICY_SCHEDULING,
    **_AUTH,
    **_AUTOSCALING,
}

#: (apiVersion, kind) of a top-level object -> its message table.
KINDS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        ("v1", "Namespace"): "core.Namespace",
        ("v1", "ConfigMap"): "core.ConfigMap",
        ("v1", "Secret"): "core.Secret",
        ("v1", "Service"): "core.Service",
        ("v1", "ServiceAccount"): "core.ServiceAccount",
        ("v1", "Pod"): "core.Pod",
        ("v1", "PodTemplate"): "core.PodTemplate",
        ("v1", "ResourceQuota"): "core.ResourceQuota",
        ("v1", "Event"): "core.Event",
        ("apps/v1", "Deployment"): "apps.Deployment",
        ("apps/v1", "ReplicaSet"): "apps.ReplicaSet",
        ("apps/v1", "DaemonSet"): "apps.DaemonSet",
        ("apps/v1", "ControllerRevision"): "apps.ControllerRevision",
        ("batch/v1", "Job"): "batch.Job",
        ("batch/v1", "CronJob"): "batch.CronJob",
        ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
        ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
        ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.Binding",
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.Binding",
        ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
        ("policy/v1", "Eviction"): "policy.Eviction",
        ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass",
        ("authentication.k8s.io/v1", "TokenRequest"): "authn.TokenRequest",
        ("authentication.k8s.io/v1", "TokenReview"): "authn.TokenReview",
        ("authentication.k8s.io/v1", "SelfSubjectReview"): "authn.SelfSubjectReview",
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "authz.SelfSubjectAccessReview",
        ("authorization.k8s.io/v1", "SubjectAccessReview"): "authz.SubjectAccessReview",
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "authz.SubjectAccessReview",
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "authz.SelfSubjectRulesReview",
        ("autoscaling/v1", "Scale"): "autoscaling.Scale",
        ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling.HorizontalPodAutoscaler",
    }
)

#: meta.k8s.io kinds registered into every group version (client-go sends a
#: DeleteOptions body tagged with the target resource's apiVersion, e.g. "v1").
AnyVersionKinds: Final[Mapping[str, str]] = MappingProxyType({"DeleteOptions": "meta.DeleteOptions"})


def _compile_field(number: int, entry: tuple[Any, ...]) -> FieldSpec:
    json_name, type_, *flags = entry
    unknown = set(flags) - {REP, KEEP, INLINE}
    if unknown:
        raise ValueError(f"field {number} ({json_name}): unknown flags {sorted(unknown)}")
    return FieldSpec(
        number=number,
        json_name=json_name,
        type=type_,
        repeated=REP in flags,
        keep_zero=KEEP in flags,
        inline=INLINE in flags,
    )


def _compile(tables: Mapping[str, Table]) -> dict[str, dict[int, FieldSpec]]:
    return {
        name: {number: _compile_field(number, entry) for number, entry in table.items()}
        for name, table in tables.items()
    }


#: Compiled tables: message name -> field number -> FieldSpec.
MESSAGES: Final[Mapping[str, Mapping[int, FieldSpec]]] = MappingProxyType(_compile(_TABLES))


def compiled(name: str) -> Mapping[int, FieldSpec]:
    """The compiled table for message ``name`` (KeyError if it is not tabled)."""
    return MESSAGES[name]
