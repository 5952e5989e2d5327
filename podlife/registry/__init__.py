"""Resource types: what each kind is, and its validation, defaulting and status rules.

``types``       ResourceType and the Strategy base the REST layer calls.
``validation``  names, labels, annotations, metadata (shared by all kinds).
``pods``        the pod strategy (defaults, immutability, graceful deletion, binding).
``core``        the other core/v1 kinds and leases.
``network``     network.podlife.io/v1 Port and Subnet.
``catalog``     every served kind, looked up by group/version/plural or kind.
``schemas/``    the 1.37 API schemas (loader, compiled tree, strict decoder) and one catalog's CRD schemas.
``crds/``       CRDs: the CRD strategy, structural schemas, value validation, the custom kinds.
``tables``      server-side Table columns for ``kubectl get``.
"""
