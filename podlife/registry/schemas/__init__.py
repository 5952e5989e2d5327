"""The API schemas: one source for validation, OpenAPI, patch metadata and field management.

Design.  Every schema-driven feature of the API server — strict field validation on
create/update, the ``/openapi/v3`` documents that ``kubectl create -f``, ``apply`` and
``explain`` download, the patch strategies that strategic merge patch needs
(``containers`` merge by ``name``, ``finalizers`` merge as a set, ...) and the field
manager's list and map types — reads the definitions kept here, so they can never
disagree.  Four modules, each a layer over the one before, each built lazily and
cached, because the API server must start fast and most processes (the kubelet, the
simulator) never touch schemas:

* :mod:`.loader` — the Kubernetes 1.37 definitions from ``kubernetes-validate``,
  normalized to the OpenAPI v3 form the API server serves (process-wide, immutable);
* :mod:`.tree` — definitions compiled to :class:`~.tree.SchemaNode` trees with their
  patch metadata (:class:`~.tree.PatchMeta`); the built-in trees are process-wide;
* :mod:`.custom` — :class:`~.custom.CustomSchemas`, the schemas of the custom kinds
  (CRDs) of one API server, owned by its :class:`~podlife.registry.catalog.Catalog`,
  with lookups that answer for built-in and custom kinds alike;
* :mod:`.decoder` — the strict decoder (:func:`~.decoder.validate_object`,
  :func:`~.decoder.duplicate_fields`, :func:`~.decoder.format_issues`).

Import from the module that defines a name; this package exports nothing itself.
"""
