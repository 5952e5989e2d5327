"""Kubernetes' bootstrap RBAC policy, as API objects, and the rule that keeps it up to date.

Design
------
An RBAC API server starts with a fixed set of roles and bindings (Kubernetes'
``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``: ``policy.go``,
``controller_policy.go``, ``namespace_policy.go``; its rendered form is the
``testdata/*.yaml`` next to them). Clients rely on them by name: ``kubectl create
rolebinding --clusterrole=edit``, charts that bind ``view`` or ``system:auth-delegator``,
``kubectl auth can-i`` through ``system:basic-user``, operators that label their own
ClusterRoles ``rbac.authorization.k8s.io/aggregate-to-edit: "true"``. So podlife ships
the same objects with the same rules, rule for rule and in the same order (each list
sorted, as Kubernetes' rule builder sorts it), and the same metadata: the label
``kubernetes.io/bootstrapping: rbac-defaults`` and the annotation
``rbac.authorization.kubernetes.io/autoupdate: "true"`` on every one.

What is here, all pure (no I/O) except :func:`ensure_bootstrap_policy`:

* :func:`bootstrap_cluster_roles` -- the cluster roles (``cluster-admin``, the
  aggregated ``admin``/``edit``/``view`` and the ``system:aggregate-to-*`` roles that
  feed them -- plus metrics-server's ``system:aggregated-metrics-reader`` and podlife's
  ``system:aggregated-podtrace-reader``, for the APIs this API server answers itself --,
  the ``system:*`` roles of components and clients) followed by the
  ``system:controller:<name>`` roles of the kube-controller-manager's controllers that
  act on kinds podlife serves (the cloud, volume-attach and DRA controllers are left
  out: podlife has no such controllers nor serves their kinds);
* :func:`bootstrap_cluster_role_bindings` -- their bindings: ``cluster-admin`` to the
  group ``system:masters``, ``system:basic-user`` and ``system:discovery`` to
  ``system:authenticated``, ``system:public-info-viewer`` to authenticated and
  unauthenticated, each controller role to the ServiceAccount ``kube-system/<name>``;
  ``system:node`` is bound to no one (nodes are authorized by the Node authorizer; the
  binding is kept empty, as Kubernetes keeps it);
* :func:`bootstrap_roles` / :func:`bootstrap_role_bindings` -- the namespaced ones in
  ``kube-system`` and ``kube-public`` (leader locking, the extension API server
  authentication reader, the bootstrap signer, the token cleaner);
* :func:`reconcile` -- the API server's start-up rule (``auth reconcile`` without
  ``--remove-extra-permissions``): create what is missing; for what exists, add the
  missing rules, aggregation selectors, subjects, labels and annotations and keep
  everything extra, unless the object says ``autoupdate: "false"``.

Every call builds fresh objects, so callers may change what they get.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from ...client.base import Client, Obj, Resource
from ...machinery.errors import ApiError

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
BOOTSTRAP_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
AGGREGATE_TO = {name: f"rbac.authorization.k8s.io/aggregate-to-{name}" for name in ("admin", "edit", "view")}
CONTROLLER_PREFIX = "system:controller:"
KUBE_SYSTEM = "kube-system"
KUBE_PUBLIC = "kube-public"

CLUSTER_ROLES = Resource(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False)
ROLES = Resource(RBAC_GROUP, "v1", "roles", "Role")
ROLE_BINDINGS = Resource(RBAC_GROUP, "v1", "rolebindings", "RoleBinding")

# API groups, as the bootstrap policy names them
CORE = ""
APPS = "apps"
AUTHENTICATION = "authentication.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
AUTOSCALING = "autoscaling"
BATCH = "batch"
CERTIFICATES = "certificates.k8s.io"
COORDINATION = "coordination.k8s.io"
DISCOVERY = "discovery.k8s.io"
EVENTS_GROUP = "events.k8s.io"
EXTENSIONS = "extensions"
NETWORKING = "networking.k8s.io"
#: podlife's own network API (Neutron-style ports and subnets)
PODLIFE_NETWORK = "network.podlife.io"
#: podlife's pod traces (read-only, served from the recorder)
PODLIFE_TRACE = "trace.podlife.io"
POLICY = "policy"
STORAGE = "storage.k8s.io"

READ = "get list watch"
WRITE = "create update patch delete deletecollection"
READ_WRITE = f"{READ} {WRITE}"
READ_UPDATE = f"{READ} update patch"


# -- building blocks ---------------------------------------------------------------------


def _words(text: str | Sequence[str]) -> list[str]:
    return text.split() if isinstance(text, str) else list(text)


def rule(verbs: str | Sequence[str], groups: Sequence[str], resources: str | Sequence[str],
         names: str | Sequence[str] = ()) -> Obj:
    """A resource rule; every list sorted and de-duplicated, as Kubernetes' ``NewRule`` builds it.

    Keys come in ``PolicyRule``'s order (verbs, apiGroups, resources, resourceNames).
    """
    built: Obj = {"verbs": sorted(set(_words(verbs))), "apiGroups": sorted(set(groups)),
                  "resources": sorted(set(_words(resources)))}
    if names:
        built["resourceNames"] = sorted(set(_words(names)))
    return built


def url_rule(verbs: str | Sequence[str], urls: str | Sequence[str]) -> Obj:
    """A non-resource rule (``/healthz``, ``/api/*``)."""
    return {"verbs": sorted(set(_words(verbs))), "nonResourceURLs": sorted(set(_words(urls)))}


def events_rule() -> Obj:
    """What every component needs to record events, in both event APIs."""
    return rule("create update patch", [CORE, EVENTS_GROUP], "events")


def _metadata(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {BOOTSTRAP_LABEL[0]: BOOTSTRAP_LABEL[1], **(labels or {})}
    meta["annotations"] = {AUTOUPDATE_ANNOTATION: "true"}
    return meta


def cluster_role(name: str, rules: list[Obj], *, labels: dict[str, str] | None = None,
                 aggregate: str | None = None) -> Obj:
    """A ClusterRole; ``aggregate`` makes it an aggregated one (its rules come from the controller)."""
    role: Obj = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _metadata(name, labels=labels)}
    if aggregate is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO[aggregate]: "true"}}]}
    else:
        role["rules"] = rules
    return role


def namespaced_role(namespace: str, name: str, rules: list[Obj]) -> Obj:
    return {"apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": _metadata(name, namespace), "rules": rules}


def user(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


def group(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def service_account(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _binding(kind: str, name: str, role_kind: str, role_name: str, subjects: list[Obj],
             namespace: str | None = None) -> Obj:
    binding: Obj = {"apiVersion": RBAC_API_VERSION, "kind": kind, "metadata": _metadata(name, namespace),
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name}}
    if subjects:  # Go omits an empty list (system:node's binding has none)
        binding["subjects"] = subjects
    return binding


def cluster_role_binding(name: str, subjects: list[Obj], role: str | None = None) -> Obj:
    return _binding("ClusterRoleBinding", name, "ClusterRole", role or name, subjects)


def role_binding(namespace: str, name: str, subjects: list[Obj], role: str | None = None) -> Obj:
    return _binding("RoleBinding", name, "Role", role or name, subjects, namespace)


# -- the cluster roles (policy.go) -------------------------------------------------------


def _aggregated_roles() -> list[Obj]:
    """admin > edit > view, each the union of the roles that carry its aggregate-to label."""
    return [
        cluster_role("admin", [], aggregate="admin"),
        cluster_role("edit", [], aggregate="edit", labels={AGGREGATE_TO["admin"]: "true"}),
        cluster_role("view", [], aggregate="view", labels={AGGREGATE_TO["edit"]: "true"}),
        cluster_role("system:aggregate-to-admin", [
            rule("create", [AUTHORIZATION], "localsubjectaccessreviews"),
            rule(READ_WRITE, [RBAC_GROUP], "roles rolebindings"),
        ], labels={AGGREGATE_TO["admin"]: "true"}),
        cluster_role("system:aggregate-to-edit", _edit_rules(), labels={AGGREGATE_TO["edit"]: "true"}),
        cluster_role("system:aggregate-to-view", _view_rules(), labels={AGGREGATE_TO["view"]: "true"}),
        *_served_view_roles(),
    ]


def _served_view_roles() -> list[Obj]:
    """Reads of the APIs podlife's API server answers itself, aggregated into ``view`` (so ``edit`` and ``admin``).

    ``system:aggregated-metrics-reader`` is the role metrics-server installs beside its
    APIService (``kubectl top`` for anyone bound to ``view``); the podtrace reader is
    podlife's own, in the same shape: a pod's trace is as readable as the pod.
    """
    view = {AGGREGATE_TO["view"]: "true"}
    return [
        cluster_role("system:aggregated-metrics-reader", [rule(READ, ["metrics.k8s.io"], "pods nodes")], labels=view),
        cluster_role("system:aggregated-podtrace-reader", [rule(READ, [PODLIFE_TRACE], "podtraces")], labels=view),
    ]


def _edit_rules() -> list[Obj]:
    """Writes of user workloads; reads of what ``view`` must not show (secrets, exec, proxy)."""
    return [
        rule(READ, [CORE], "pods/attach pods/proxy pods/exec pods/portforward secrets services/proxy"),
        rule("impersonate", [CORE], "serviceaccounts"),
        rule(WRITE, [CORE], "pods pods/attach pods/proxy pods/exec pods/portforward"),
        rule("create", [CORE], "pods/eviction"),
        rule(WRITE, [CORE], "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
                            "services/proxy persistentvolumeclaims configmaps secrets events"),
        rule("create", [CORE], "serviceaccounts/token"),
        rule(WRITE, [APPS], "statefulsets statefulsets/scale daemonsets deployments deployments/scale "
                            "deployments/rollback replicasets replicasets/scale"),
        rule(WRITE, [AUTOSCALING], "horizontalpodautoscalers"),
        rule(WRITE, [BATCH], "jobs cronjobs"),
        rule(WRITE, [EXTENSIONS], "daemonsets deployments deployments/scale deployments/rollback ingresses "
                                  "replicasets replicasets/scale replicationcontrollers/scale networkpolicies"),
        rule(WRITE, [POLICY], "poddisruptionbudgets"),
        rule(WRITE, [NETWORKING], "networkpolicies ingresses"),
        rule(READ_WRITE, [COORDINATION], "leases"),
    ]


def _view_rules() -> list[Obj]:
    """Reads of non-escalating namespaced resources (no secrets, no exec)."""
    return [
        rule(READ, [CORE], "pods replicationcontrollers replicationcontrollers/scale serviceaccounts services "
                           "services/status endpoints persistentvolumeclaims persistentvolumeclaims/status configmaps"),
        rule(READ, [CORE], "limitranges resourcequotas bindings events pods/status resourcequotas/status "
                           "namespaces/status replicationcontrollers/status pods/log"),
        rule(READ, [CORE], "namespaces"),  # in a namespace: *this* namespace
        rule(READ, [DISCOVERY], "endpointslices"),
        rule(READ, [APPS], "controllerrevisions statefulsets statefulsets/status statefulsets/scale daemonsets "
                           "daemonsets/status deployments deployments/status deployments/scale replicasets "
                           "replicasets/status replicasets/scale"),
        rule(READ, [AUTOSCALING], "horizontalpodautoscalers horizontalpodautoscalers/status"),
        rule(READ, [BATCH], "jobs cronjobs cronjobs/status jobs/status"),
        rule(READ, [EXTENSIONS], "daemonsets daemonsets/status deployments deployments/scale deployments/status "
                                 "ingresses ingresses/status replicasets replicasets/scale replicasets/status "
                                 "replicationcontrollers/scale networkpolicies"),
        rule(READ, [POLICY], "poddisruptionbudgets poddisruptionbudgets/status"),
        rule(READ, [NETWORKING], "ingresses ingresses/status networkpolicies"),
    ]


def _client_roles() -> list[Obj]:
    """Roles every user or an API client is given by the default bindings."""
    return [
        cluster_role("cluster-admin", [rule("*", ["*"], "*"), url_rule("*", "*")]),
        cluster_role("system:discovery", [url_rule("get", "/livez /readyz /healthz /version /version/ "
                                                          "/openapi /openapi/* /api /api/* /apis /apis/*")]),
        cluster_role("system:monitoring", [url_rule("get", "/metrics /metrics/slis /livez /readyz /healthz "
                                                           "/livez/* /readyz/* /healthz/*")]),
        cluster_role("system:basic-user", [
            rule("create", [AUTHORIZATION], "selfsubjectaccessreviews selfsubjectrulesreviews"),
            rule("create", [AUTHENTICATION], "selfsubjectreviews"),
        ]),
        cluster_role("system:public-info-viewer", [url_rule("get", "/livez /readyz /healthz /version /version/")]),
        cluster_role("system:auth-delegator", [
            rule("create", [AUTHENTICATION], "tokenreviews"),
            rule("create", [AUTHORIZATION], "subjectaccessreviews"),
        ]),
        cluster_role("system:service-account-issuer-discovery",
                     [url_rule("get", "/.well-known/openid-configuration /openid/v1/jwks")]),
        cluster_role("system:heapster", [
            rule(READ, [CORE], "events pods nodes namespaces"),
            rule(READ, [EXTENSIONS], "deployments"),
        ]),
        cluster_role("system:kube-aggregator", [rule(READ, [CORE], "services endpoints")]),
        cluster_role("system:kube-dns", [rule("list watch", [CORE], "endpoints services")]),
        cluster_role("system:kubelet-api-admin", [
            rule(READ, [CORE], "nodes"),
            rule("proxy", [CORE], "nodes"),
            rule("*", [CORE], "nodes/proxy nodes/metrics nodes/stats nodes/log"),
        ]),
        cluster_role("system:persistent-volume-provisioner", [
            rule("get list watch create delete", [CORE], "persistentvolumes"),
            rule("get list watch update", [CORE], "persistentvolumeclaims"),
            rule(READ, [STORAGE], "storageclasses"),
            rule("watch", [CORE], "events"),
            events_rule(),
        ]),
    ]


def node_rules() -> list[Obj]:
    """``system:node``: what a kubelet needs (the Node authorizer narrows it to its own node)."""
    return [
        rule("create", [AUTHENTICATION], "tokenreviews"),
        rule("create", [AUTHORIZATION], "subjectaccessreviews localsubjectaccessreviews"),
        rule(READ, [CORE], "services"),
        rule("create get list watch", [CORE], "nodes"),
        rule("update patch", [CORE], "nodes/status"),
        rule("update patch", [CORE], "nodes"),
        rule("create update patch", [CORE], "events"),
        rule(READ, [CORE], "pods"),
        rule("create delete", [CORE], "pods"),
        rule("update patch", [CORE], "pods/status"),
        rule("create", [CORE], "pods/eviction"),
        rule(READ, [CORE], "secrets configmaps"),
        rule("get", [CORE], "persistentvolumeclaims persistentvolumes"),
        rule("get", [CORE], "endpoints"),
        rule("create get list watch", [CERTIFICATES], "certificatesigningrequests"),
        rule("get create update patch delete", [COORDINATION], "leases"),
        rule("get", [STORAGE], "volumeattachments"),
        rule("create", [CORE], "serviceaccounts/token"),
        rule("get update patch", [CORE], "persistentvolumeclaims/status"),
        rule(READ, [STORAGE], "csidrivers"),
        rule("get create update patch delete", [STORAGE], "csinodes"),
        rule(READ, ["node.k8s.io"], "runtimeclasses"),
        # podlife's: the CNI plugin on the node reads its pods' ports and reports them ACTIVE
        # (NodeRestriction narrows the writes to ports bound to the node)
        rule(READ, [PODLIFE_NETWORK], "ports"),
        rule("get update patch", [PODLIFE_NETWORK], "ports/status"),
    ]


def _component_roles() -> list[Obj]:
    """Roles of the control-plane and node components (bound to their users below)."""
    return [
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-problem-detector", [
            rule("get", [CORE], "nodes"),
            rule("patch", [CORE], "nodes/status"),
            events_rule(),
        ]),
        # kubeadm's role for the cluster DNS (CoreDNS); podlife's DNS component acts as kube-system:coredns
        cluster_role("system:coredns", [
            rule("list watch", [CORE], "endpoints services pods namespaces"),
            rule("list watch", [DISCOVERY], "endpointslices"),
        ]),
        cluster_role("system:node-proxier", [
            rule("list watch", [CORE], "services endpoints"),
            rule(READ, [CORE], "nodes"),
            events_rule(),
            rule("list watch", [DISCOVERY], "endpointslices"),
        ]),
        cluster_role("system:kube-controller-manager", [
            events_rule(),
            rule("create", [COORDINATION], "leases"),  # leader election
            rule("get update", [COORDINATION], "leases", names="kube-controller-manager"),
            rule("create", [CORE], "secrets serviceaccounts"),  # the identities of the controllers
            rule("delete", [CORE], "secrets"),
            rule("get", [CORE], "namespaces secrets serviceaccounts configmaps"),
            rule("update", [CORE], "secrets serviceaccounts"),
            rule("create", [AUTHENTICATION], "tokenreviews"),  # delegated authentication and authorization
            rule("create", [AUTHORIZATION], "subjectaccessreviews"),
            rule("list watch", ["*"], "*"),  # the shared informers
            rule("create", [CORE], "serviceaccounts/token"),
        ]),
        cluster_role("system:kube-scheduler", [
            events_rule(),
            rule("create", [COORDINATION], "leases"),
            rule("get update", [COORDINATION], "leases", names="kube-scheduler"),
            rule(READ, [CORE], "nodes"),
            rule("get list watch delete", [CORE], "pods"),
            rule("create", [CORE], "pods/binding bindings"),
            rule("patch update", [CORE], "pods/status"),
            rule(READ, [CORE], "replicationcontrollers services"),
            rule(READ, [APPS, EXTENSIONS], "replicasets"),
            rule(READ, [APPS], "statefulsets"),
            rule(READ, [POLICY], "poddisruptionbudgets"),
            rule(READ, [CORE], "persistentvolumeclaims persistentvolumes"),
            rule("create", [AUTHENTICATION], "tokenreviews"),
            rule("create", [AUTHORIZATION], "subjectaccessreviews"),
            rule(READ, [STORAGE], "csinodes"),
            rule(READ, [CORE], "namespaces"),
            rule(READ, [STORAGE], "csidrivers"),
            rule(READ, [STORAGE], "csistoragecapacities"),
        ]),
        cluster_role("system:volume-scheduler", [
            rule(READ_UPDATE, [CORE], "persistentvolumes"),
            rule(READ, [STORAGE], "storageclasses"),
            rule(READ_UPDATE, [CORE], "persistentvolumeclaims"),
        ]),
        cluster_role("system:node-bootstrapper", [rule("create get list watch", [CERTIFICATES], "certificatesigningrequests")]),
    ]


def _certificate_roles() -> list[Obj]:
    """CSR roles: nodes asking for client certificates, approvers of each built-in signer."""
    roles = [
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                     [rule("create", [CERTIFICATES], "certificatesigningrequests/nodeclient")]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                     [rule("create", [CERTIFICATES], "certificatesigningrequests/selfnodeclient")]),
    ]
    approvers = {"kube-apiserver-client-approver": "kubernetes.io/kube-apiserver-client",
                 "kube-apiserver-client-kubelet-approver": "kubernetes.io/kube-apiserver-client-kubelet",
                 "kubelet-serving-approver": "kubernetes.io/kubelet-serving",
                 "legacy-unknown-approver": "kubernetes.io/legacy-unknown"}
    roles += [cluster_role(f"system:certificates.k8s.io:{name}", [rule("approve", [CERTIFICATES], "signers", names=signer)])
              for name, signer in approvers.items()]
    return roles


# -- controller roles (controller_policy.go) ---------------------------------------------


def _finalizers_rule(groups: Sequence[str], resource: str) -> Obj:
    """Updating ``<resource>/finalizers``: needed to set ownerReferences that block their owner's deletion."""
    return rule("update", groups, f"{resource}/finalizers")


def _local_path_provisioner_rules() -> list[Obj]:
    """What provisioning podlife's node-local volumes takes: making and removing volumes for claims,
    the claims' annotations and status (expansion), the classes, nodes, CSINodes and the CSIDriver."""
    return [
        # patch: removing external-provisioner's finalizer from a volume it reclaimed
        rule("get list watch create patch delete", [CORE], "persistentvolumes"),
        rule(READ_UPDATE, [CORE], "persistentvolumeclaims"),
        rule("update patch", [CORE], "persistentvolumeclaims/status"),
        rule(READ, [STORAGE], "storageclasses"),
        rule(READ, [CORE], "nodes"),
        rule(f"{READ} create update patch delete", [STORAGE], "csinodes"),
        rule("get", [STORAGE], "csidrivers"),
    ]


def _controller_rules() -> dict[str, list[Obj]]:
    """``system:controller:<name>`` rules, for the controllers of kinds podlife serves."""
    return {
        "certificate-controller": [  # the CSR approving, signing and cleaner controllers
            rule("get list watch delete", [CERTIFICATES], "certificatesigningrequests"),
            rule("update", [CERTIFICATES], "certificatesigningrequests/status certificatesigningrequests/approval"),
            rule("approve", [CERTIFICATES], "signers", names="kubernetes.io/kube-apiserver-client-kubelet"),
            rule("sign", [CERTIFICATES], "signers", names="kubernetes.io/legacy-unknown kubernetes.io/kube-apiserver-client "
                                                          "kubernetes.io/kube-apiserver-client-kubelet "
                                                          "kubernetes.io/kubelet-serving"),
            rule("create", [AUTHORIZATION], "subjectaccessreviews"),
            events_rule(),
        ],
        "clusterrole-aggregation-controller": [
            # escalate: it writes rules it need not hold itself
            rule("escalate get list watch update patch", [RBAC_GROUP], "clusterroles"),
        ],
        "cronjob-controller": [
            rule("get list watch update", [BATCH], "cronjobs"),
            rule("get list watch create update delete patch", [BATCH], "jobs"),
            rule("update", [BATCH], "cronjobs/status"),
            _finalizers_rule([BATCH], "cronjobs"),
            rule("list watch delete", [CORE], "pods"),
            events_rule(),
        ],
        "daemon-set-controller": [
            rule(READ, [APPS, EXTENSIONS], "daemonsets"),
            rule("update", [APPS, EXTENSIONS], "daemonsets/status"),
            _finalizers_rule([APPS, EXTENSIONS], "daemonsets"),
            rule("list watch", [CORE], "nodes"),
            rule("list watch create delete patch", [CORE], "pods"),
            rule("create", [CORE], "pods/binding"),
            rule("get list watch create delete update patch", [APPS], "controllerrevisions"),
            events_rule(),
        ],
        "deployment-controller": [
            rule("get list watch update", [APPS, EXTENSIONS], "deployments"),
            rule("update", [APPS, EXTENSIONS], "deployments/status"),
            _finalizers_rule([APPS, EXTENSIONS], "deployments"),
            rule("get list watch create update patch delete", [APPS, EXTENSIONS], "replicasets"),
            # pods are updated to sweep their old labels (the pod-template-hash)
            rule("get list watch update", [CORE], "pods"),
            events_rule(),
        ],
        "disruption-controller": [
            rule(READ, [APPS, EXTENSIONS], "deployments"),
            rule(READ, [APPS, EXTENSIONS], "replicasets"),
            rule(READ, [CORE], "replicationcontrollers"),
            rule(READ, [POLICY], "poddisruptionbudgets"),
            rule(READ, [APPS], "statefulsets"),
            rule("update", [POLICY], "poddisruptionbudgets/status"),
            rule("patch update", [CORE], "pods/status"),
            rule("get", ["*"], "*/scale"),
            events_rule(),
        ],
        "endpoint-controller": [
            rule(READ, [CORE], "services pods"),
            rule("get list watch create update delete", [CORE], "endpoints"),
            rule("create", [CORE], "endpoints/restricted"),
            events_rule(),
        ],
        "endpointslice-controller": [
            rule(READ, [CORE], "services pods nodes"),
            rule("update", [CORE], "services/finalizers"),  # the OwnerReferencesPermissionEnforcement rule
            rule("get list watch create update delete", [DISCOVERY], "endpointslices"),
            events_rule(),
        ],
        "endpointslicemirroring-controller": [
            rule(READ, [CORE], "services endpoints"),
            rule("update", [CORE], "services/finalizers"),
            rule("update", [CORE], "endpoints/finalizers"),
            rule("get list watch create update delete", [DISCOVERY], "endpointslices"),
            events_rule(),
        ],
        "ephemeral-volume-controller": [
            rule(READ, [CORE], "pods"),
            rule("update", [CORE], "pods/finalizers"),
            rule("get list watch create", [CORE], "persistentvolumeclaims"),
            events_rule(),
        ],
        # Kubernetes' rules since 1.26 (the glusterfs ones -- classes, services, endpoints, secrets -- left with it)
        "expand-controller": [
            rule("get list watch update patch", [CORE], "persistentvolumes"),
            rule("update patch", [CORE], "persistentvolumeclaims/status"),
            rule(READ, [CORE], "persistentvolumeclaims"),
            events_rule(),
        ],
        "generic-garbage-collector": [
            rule("get list watch patch update delete", ["*"], "*"),  # every kind, CRDs included
            events_rule(),
        ],
        "horizontal-pod-autoscaler": [
            rule(READ, [AUTOSCALING], "horizontalpodautoscalers"),
            rule("update", [AUTOSCALING], "horizontalpodautoscalers/status"),
            rule("get update", ["*"], "*/scale"),
            rule("list watch", [CORE], "pods"),
            rule("list watch", ["metrics.k8s.io"], "pods"),
            rule(READ, ["custom.metrics.k8s.io"], "*"),
            rule(READ, ["external.metrics.k8s.io"], "*"),
            events_rule(),
        ],
        "job-controller": [
            rule("get list watch update patch", [BATCH], "jobs"),
            rule("update", [BATCH], "jobs/status"),
            _finalizers_rule([BATCH], "jobs"),
            rule("list watch create delete patch", [CORE], "pods"),
            events_rule(),
        ],
        "legacy-service-account-token-cleaner": [
            rule("get", [CORE], "configmaps", names="kube-apiserver-legacy-service-account-token-tracking"),
            rule("delete patch", [CORE], "secrets"),
        ],
        "namespace-controller": [
            rule("get list watch delete", [CORE], "namespaces"),
            rule("update", [CORE], "namespaces/finalize namespaces/status"),
            rule("get list watch delete deletecollection", ["*"], "*"),  # the content of every kind
        ],
        # podlife's own components, run as service accounts in kube-system like the others:
        # the node side of its local-path driver (Rancher's local-path-provisioner role, with
        # the CSINodes a CSI node plugin registers: volumes made and removed for claims), the
        # network controller (Kuryr's controller role: ports for pods) and the node simulator
        # (KWOK's controller role: it plays every simulated node's kubelet)
        "local-path-provisioner": [
            *_local_path_provisioner_rules(),
            rule("create patch", [CORE, EVENTS_GROUP], "events"),
        ],
        "network-controller": [
            rule("get list watch patch", [CORE], "pods"),
            rule(f"{READ_UPDATE} create delete", [PODLIFE_NETWORK], "ports subnets"),
            rule("update patch", [PODLIFE_NETWORK], "ports/status subnets/status"),
            events_rule(),
        ],
        # the NetworkPolicy agent of each real node (Calico's felix role): it only reads
        "network-policy-agent": [
            rule("list watch", [NETWORKING], "networkpolicies"),
            rule("list watch", [CORE], "pods namespaces"),
        ],
        "node-simulator": [
            rule(f"{READ_UPDATE} create delete", [CORE], "nodes"),
            rule("update patch", [CORE], "nodes/status"),
            rule(f"{READ_UPDATE} delete", [CORE], "pods"),
            rule("update patch", [CORE], "pods/status"),
            rule(f"{READ_UPDATE} create delete", [COORDINATION], "leases"),
            *_local_path_provisioner_rules(),  # it provisions its nodes' local-path volumes too
            events_rule(),
        ],
        "node-controller": [
            rule("get list watch update delete patch", [CORE], "nodes"),
            rule("patch update", [CORE], "nodes/status"),
            rule("patch update", [CORE], "pods/status"),  # marking pods of lost nodes not ready
            rule("get list watch delete", [CORE], "pods"),
            events_rule(),
        ],
        "persistent-volume-binder": [
            rule("get list watch update create delete", [CORE], "persistentvolumes"),
            rule("update", [CORE], "persistentvolumes/status"),
            rule("get list watch update", [CORE], "persistentvolumeclaims"),
            rule("update", [CORE], "persistentvolumeclaims/status"),
            rule("get list watch create delete", [CORE], "pods"),
            rule(READ, [STORAGE], "storageclasses"),
            rule("list watch", [CORE], "nodes"),
            events_rule(),
            rule("watch", [CORE], "events"),
        ],
        "pod-garbage-collector": [
            rule("list watch delete", [CORE], "pods"),
            rule(READ, [CORE], "nodes"),
            rule("patch", [CORE], "pods/status"),
        ],
        "pv-protection-controller": [
            rule("get list watch update", [CORE], "persistentvolumes"),
            events_rule(),
        ],
        "pvc-protection-controller": [
            rule("get list watch update", [CORE], "persistentvolumeclaims"),
            rule("update", [CORE], "persistentvolumeclaims/status"),
            rule(READ, [CORE], "pods"),
            events_rule(),
        ],
        "replicaset-controller": [
            rule("get list watch update", [APPS, EXTENSIONS], "replicasets"),
            rule("update", [APPS, EXTENSIONS], "replicasets/status"),
            _finalizers_rule([APPS, EXTENSIONS], "replicasets"),
            rule("list watch patch create delete", [CORE], "pods"),
            events_rule(),
        ],
        "replication-controller": [
            rule("get list watch update", [CORE], "replicationcontrollers"),
            rule("update", [CORE], "replicationcontrollers/status"),
            _finalizers_rule([CORE], "replicationcontrollers"),
            rule("list watch patch create delete", [CORE], "pods"),
            events_rule(),
        ],
        "resourcequota-controller": [
            rule("list watch", ["*"], "*"),  # counts every kind
            rule("update", [CORE], "resourcequotas/status"),
            events_rule(),
        ],
        "root-ca-cert-publisher": [
            rule("create update", [CORE], "configmaps"),
            events_rule(),
        ],
        "service-account-controller": [
            rule("create", [CORE], "serviceaccounts"),
            events_rule(),
        ],
        "statefulset-controller": [
            rule("list watch", [CORE], "pods"),
            rule(READ, [APPS], "statefulsets"),
            rule("update", [APPS], "statefulsets/status"),
            _finalizers_rule([APPS], "statefulsets"),
            rule("get create delete update patch", [CORE], "pods"),
            rule("get list watch create delete update patch", [APPS], "controllerrevisions"),
            rule("get list watch create", [CORE], "persistentvolumeclaims"),
            rule("update delete", [CORE], "persistentvolumeclaims"),
            _finalizers_rule([CORE], "pods"),
            events_rule(),
        ],
        "ttl-after-finished-controller": [
            rule("get list watch delete", [BATCH], "jobs"),
            events_rule(),
        ],
        "ttl-controller": [
            rule("update patch list watch", [CORE], "nodes"),
            events_rule(),
        ],
    }


#: the controllers that get a ``system:controller:<name>`` role, ClusterRoleBinding and ServiceAccount
CONTROLLER_NAMES = tuple(sorted(_controller_rules()))


def controller_roles() -> list[Obj]:
    """The ``system:controller:<name>`` ClusterRoles, by name."""
    return [cluster_role(CONTROLLER_PREFIX + name, rules) for name, rules in sorted(_controller_rules().items())]


def controller_role_bindings() -> list[Obj]:
    """Each controller role bound to the controller's ServiceAccount in kube-system."""
    return [cluster_role_binding(CONTROLLER_PREFIX + name, [service_account(KUBE_SYSTEM, name)])
            for name in CONTROLLER_NAMES]


# -- the public API ----------------------------------------------------------------------


def bootstrap_cluster_roles() -> list[Obj]:
    """Every bootstrap ClusterRole: policy.go's roles, then the controller roles."""
    return [*_client_roles(), *_aggregated_roles(), *_component_roles(), *_certificate_roles(), *controller_roles()]


def bootstrap_cluster_role_bindings() -> list[Obj]:
    """Every bootstrap ClusterRoleBinding (the default ones, then the controllers')."""
    authenticated, unauthenticated = group("system:authenticated"), group("system:unauthenticated")
    return [
        cluster_role_binding("cluster-admin", [group("system:masters")]),
        cluster_role_binding("system:monitoring", [group("system:monitoring")]),
        cluster_role_binding("system:discovery", [authenticated]),
        cluster_role_binding("system:basic-user", [authenticated]),
        cluster_role_binding("system:public-info-viewer", [authenticated, unauthenticated]),
        cluster_role_binding("system:node-proxier", [user("system:kube-proxy")]),
        cluster_role_binding("system:kube-controller-manager", [user("system:kube-controller-manager")]),
        cluster_role_binding("system:kube-dns", [service_account(KUBE_SYSTEM, "kube-dns")]),
        cluster_role_binding("system:coredns", [service_account(KUBE_SYSTEM, "coredns")]),
        cluster_role_binding("system:kube-scheduler", [user("system:kube-scheduler")]),
        cluster_role_binding("system:volume-scheduler", [user("system:kube-scheduler")]),
        # deprecated since the Node authorizer: kept, with no subjects, so reconciling never re-adds system:nodes
        cluster_role_binding("system:node", []),
        cluster_role_binding("system:service-account-issuer-discovery", [group("system:serviceaccounts")]),
        *controller_role_bindings(),
    ]


def _leader_locking_rules() -> list[Obj]:
    return [rule("watch get list create update", [COORDINATION], "leases"),
            rule("watch get list create update", [COORDINATION], "leasecandidates")]


def bootstrap_roles() -> list[Obj]:
    """The namespaced bootstrap Roles (namespace_policy.go), kube-system's then kube-public's."""
    return [
        namespaced_role(KUBE_SYSTEM, "extension-apiserver-authentication-reader", [
            rule(READ, [CORE], "configmaps", names="extension-apiserver-authentication"),
        ]),
        namespaced_role(KUBE_SYSTEM, "system::leader-locking-kube-controller-manager", _leader_locking_rules()),
        namespaced_role(KUBE_SYSTEM, "system::leader-locking-kube-scheduler", _leader_locking_rules()),
        namespaced_role(KUBE_SYSTEM, CONTROLLER_PREFIX + "bootstrap-signer", [rule(READ, [CORE], "secrets")]),
        namespaced_role(KUBE_SYSTEM, CONTROLLER_PREFIX + "cloud-provider", [rule("create get list watch", [CORE], "configmaps")]),
        namespaced_role(KUBE_SYSTEM, CONTROLLER_PREFIX + "token-cleaner", [
            rule("delete get list watch", [CORE], "secrets"),
            events_rule(),
        ]),
        namespaced_role(KUBE_PUBLIC, CONTROLLER_PREFIX + "bootstrap-signer", [
            rule(READ, [CORE], "configmaps"),
            rule("update", [CORE], "configmaps", names="cluster-info"),
            events_rule(),
        ]),
    ]


def bootstrap_role_bindings() -> list[Obj]:
    """The namespaced bootstrap RoleBindings, each to the Role of the same namespace."""
    kcm, scheduler = user("system:kube-controller-manager"), user("system:kube-scheduler")
    signer = CONTROLLER_PREFIX + "bootstrap-signer"
    return [
        role_binding(KUBE_SYSTEM, "system::extension-apiserver-authentication-reader", [kcm, scheduler],
                     role="extension-apiserver-authentication-reader"),
        role_binding(KUBE_SYSTEM, "system::leader-locking-kube-controller-manager", [
            kcm, service_account(KUBE_SYSTEM, "kube-controller-manager"),
            service_account(KUBE_SYSTEM, "leader-election-controller")]),
        role_binding(KUBE_SYSTEM, "system::leader-locking-kube-scheduler", [
            scheduler, service_account(KUBE_SYSTEM, "kube-scheduler")]),
        role_binding(KUBE_SYSTEM, signer, [service_account(KUBE_SYSTEM, "bootstrap-signer")]),
        role_binding(KUBE_SYSTEM, CONTROLLER_PREFIX + "cloud-provider", [service_account(KUBE_SYSTEM, "cloud-provider")]),
        role_binding(KUBE_SYSTEM, CONTROLLER_PREFIX + "token-cleaner", [service_account(KUBE_SYSTEM, "token-cleaner")]),
        role_binding(KUBE_PUBLIC, signer, [service_account(KUBE_SYSTEM, "bootstrap-signer")]),
    ]


# -- reconciliation (pkg/registry/rbac/reconciliation) -----------------------------------


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def breakdown(policy_rule: Obj) -> list[Obj]:
    """A rule as single-verb, single-resource (and single-name) rules: the unit of coverage."""
    verbs = _strings(policy_rule.get("verbs"))
    names = _strings(policy_rule.get("resourceNames"))
    pieces: list[Obj] = []
    for api_group in _strings(policy_rule.get("apiGroups")):
        for resource in _strings(policy_rule.get("resources")):
            for verb in verbs:
                base: Obj = {"verbs": [verb], "apiGroups": [api_group], "resources": [resource]}
                pieces += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in _strings(policy_rule.get("nonResourceURLs")):
        pieces += [{"verbs": [verb], "nonResourceURLs": [url]} for verb in verbs]
    return pieces


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    """``*`` covers everything, ``*/scale`` covers every ``x/scale``."""
    if "*" in owned:
        return True
    return all(r in owned or ("/" in r and "*/" + r.split("/", 1)[1] in owned) for r in wanted)


def _url_covers(owned: str, wanted: str) -> bool:
    return owned == wanted or (owned.endswith("*") and wanted.startswith(owned.rstrip("*")))


def rule_covers(owner: Obj, piece: Obj) -> bool:
    """Whether ``owner`` allows everything the broken-down ``piece`` allows."""
    def has_all(key: str) -> bool:
        held = _strings(owner.get(key))
        return "*" in held or set(_strings(piece.get(key))) <= set(held)

    owner_names, piece_names = _strings(owner.get("resourceNames")), _strings(piece.get("resourceNames"))
    names_ok = not owner_names or (bool(piece_names) and set(piece_names) <= set(owner_names))
    urls_ok = all(any(_url_covers(o, w) for o in _strings(owner.get("nonResourceURLs")))
                  for w in _strings(piece.get("nonResourceURLs")))
    return (has_all("verbs") and has_all("apiGroups") and names_ok and urls_ok
            and _resources_cover(_strings(owner.get("resources")), _strings(piece.get("resources"))))


def uncovered(owned: Iterable[Obj], wanted: Iterable[Obj]) -> list[Obj]:
    """The broken-down pieces of ``wanted`` that no rule of ``owned`` covers."""
    owned = list(owned)
    return [piece for r in wanted for piece in breakdown(r) if not any(rule_covers(o, piece) for o in owned)]


def _subject_key(subject: Obj) -> tuple[str, str, str, str]:
    return (str(subject.get("kind") or ""), str(subject.get("apiGroup") or ""),
            str(subject.get("name") or ""), str(subject.get("namespace") or ""))


def _role_ref_key(obj: Obj) -> tuple[str, str, str]:
    ref = obj.get("roleRef") or {}
    return (str(ref.get("apiGroup") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""))


def protected(obj: Obj) -> bool:
    """``autoupdate: "false"`` opts an object out of reconciliation (only that value does)."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) == "false"


def needs_recreate(existing: Obj, wanted: Obj) -> bool:
    """A binding whose roleRef differs: roleRef is immutable, so it is deleted and created anew."""
    return "roleRef" in wanted and _role_ref_key(existing) != _role_ref_key(wanted)


def _merge_metadata(result: Obj, wanted: Obj) -> None:
    """Add the wanted labels and annotations; values already set win (users keep theirs)."""
    meta = result.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        add = (wanted.get("metadata") or {}).get(key) or {}
        if add:
            meta[key] = {**add, **(meta.get(key) or {})}


def _reconcile_role(result: Obj, wanted: Obj) -> None:
    missing = uncovered(result.get("rules") or [], wanted.get("rules") or [])
    if missing:
        result["rules"] = [*(result.get("rules") or []), *missing]
    if wanted.get("kind") != "ClusterRole":
        return
    if not wanted.get("aggregationRule"):
        result.pop("aggregationRule", None)  # not meant to be aggregated at all
        return
    rule_now = result.get("aggregationRule") or {}
    have = list(rule_now.get("clusterRoleSelectors") or [])
    add = [copy.deepcopy(s) for s in wanted["aggregationRule"].get("clusterRoleSelectors") or [] if s not in have]
    if add:
        result["aggregationRule"] = {**rule_now, "clusterRoleSelectors": have + add}


def _reconcile_binding(result: Obj, wanted: Obj) -> None:
    subjects = list(result.get("subjects") or [])
    have = {_subject_key(s) for s in subjects}
    missing = [copy.deepcopy(s) for s in wanted.get("subjects") or [] if _subject_key(s) not in have]
    if missing:
        result["subjects"] = subjects + missing


def reconcile(existing: Obj | None, wanted: Obj) -> Obj | None:
    """What to write so that ``existing`` holds at least ``wanted`` (None: nothing to do).

    Kubernetes' start-up reconciliation: a missing object is created as wanted; an
    existing one gets the wanted labels and annotations it lacks, the rules it does not
    cover yet (appended as broken-down pieces), the aggregation selectors and subjects
    it lacks, and keeps everything else. An aggregated ClusterRole's rules are never
    compared (the controller owns them); an existing aggregation is dropped only when
    the wanted role is not aggregated. Objects annotated ``autoupdate: "false"`` are
    left alone. A binding whose roleRef changed comes back as ``wanted``: see
    :func:`needs_recreate` (it must be deleted and created, roleRef being immutable).
    """
    if existing is None:
        return copy.deepcopy(wanted)
    if protected(existing):
        return None
    if needs_recreate(existing, wanted):
        return copy.deepcopy(wanted)
    result = copy.deepcopy(existing)
    _merge_metadata(result, wanted)
    if "roleRef" in wanted:
        _reconcile_binding(result, wanted)
    else:
        _reconcile_role(result, wanted)
    return None if result == existing else result


def bootstrap_policy() -> list[tuple[Resource, Obj]]:
    """Every bootstrap object with its resource, roles before the bindings that name them."""
    return [*((CLUSTER_ROLES, o) for o in bootstrap_cluster_roles()),
            *((CLUSTER_ROLE_BINDINGS, o) for o in bootstrap_cluster_role_bindings()),
            *((ROLES, o) for o in bootstrap_roles()),
            *((ROLE_BINDINGS, o) for o in bootstrap_role_bindings())]


async def ensure_bootstrap_policy(client: Client) -> list[str]:
    """Create or reconcile every bootstrap object through ``client``; returns what was written.

    The API server's ``rbac/bootstrap-roles`` post-start step. Conflicts and races with
    another writer are left to the next start (the objects are idempotent). Needs the
    ``kube-system`` and ``kube-public`` namespaces.
    """
    written: list[str] = []
    for res, wanted in bootstrap_policy():
        meta = wanted["metadata"]
        if await _ensure_one(client, res, wanted):
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            written.append(f"{res.plural}/{where}{meta['name']}")
    return written


async def _ensure_one(client: Client, res: Resource, wanted: Obj) -> bool:
    meta = wanted["metadata"]
    namespace = meta.get("namespace")
    try:
        existing: Obj | None = await client.get(res, meta["name"], namespace)
    except ApiError as exc:
        if exc.code != 404:
            raise
        existing = None
    change = reconcile(existing, wanted)
    if change is None:
        return False
    try:
        if existing is None:
            await client.create(res, change, namespace)
        elif needs_recreate(existing, wanted):
            await client.delete(res, meta["name"], namespace)
            await client.create(res, change, namespace)
        else:
            await client.update(res, change)
    except ApiError as exc:
        if exc.code != 409:  # someone else wrote it meanwhile
            raise
        return False
    return True
