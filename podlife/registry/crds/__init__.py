"""CustomResourceDefinitions: the rules of the CRD kind and of the kinds CRDs define.

Design.  Everything here is pure (no I/O, no API-layer imports), in four modules:

* :mod:`.strategy` — the CRD kind (``apiextensions.k8s.io/v1``): :class:`~.strategy.CRDStrategy`
  defaults and validates CRDs as apiextensions-apiserver does and keeps
  ``status.storedVersions``; helpers that read a CRD's names, versions and conditions;
* :mod:`.structural` — structural schemas: whether a CRD's schema is one, and
  :func:`~.structural.prune` / :func:`~.structural.apply_defaults` of custom resources;
* :mod:`.value_validation` — OpenAPI v3 value checks of custom resources
  (:func:`~.value_validation.validate_value`), with kube-openapi's messages;
* :mod:`.types` — the custom kinds: one :class:`~.types.CustomResourceType` per served
  version with its :class:`~.types.CustomResourceStrategy`, and the CRD resource itself
  (:func:`~.types.crd_resource_type`);

with :mod:`.field_errors` rendering their errors as Go's ``field.Error``.

Why pure: the component that serves CRDs (:mod:`podlife.api.crds`) and the tests both
use these rules, and keeping them free of the API layer keeps the REST layer generic,
exactly as Kubernetes keeps the CRD's strategy apart from its handler.  Import from
the module that defines a name; this package exports nothing itself.
"""
