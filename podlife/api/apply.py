"""Server-side apply: ``PATCH`` with ``application/apply-patch+yaml``.

Design.  An apply sends a *partial* object -- the fields its manager has opinions
about -- and the server merges it into the live object following the schema
(keyed lists merge item by item, sets by value, atomic values are replaced), as
structured-merge-diff does in Kubernetes.  What makes apply declarative is the
bookkeeping in ``metadata.managedFields`` (:mod:`podlife.api.managed_fields`): the
manager's ``Apply`` entry becomes exactly the fields it applied, so

* a field it applied last time and not this time is removed, unless another manager
  also owns it (*prune*);
* changing a field another manager owns is a *conflict* (409, one cause per field)
  unless ``force=true``, which takes the field over;
* applying the value another manager already set makes the field co-owned.

:func:`apply_to` is that algorithm as a pure function of (live object, applied
configuration), in the order of Kubernetes' field manager: first-apply ownership
(``before-first-apply`` owns every field of an object nobody tracked yet), merge,
prune, conflicts, ownership updates, and the two ``kubectl`` compatibility steps --
conflicts with ``kubectl-client-side-apply`` on fields whose value still matches the
``last-applied-configuration`` annotation are allowed (the client-side to
server-side upgrade), and that annotation is kept in sync when it exists.
:func:`serve_apply` is the HTTP side: options (``fieldManager`` required, ``force``,
``dryRun``, ``fieldValidation``), checks of the configuration, create-on-apply (201)
and the read-modify-write through :meth:`ResourceREST.guaranteed_update`, so the
strategy, defaulting, validation and optimistic concurrency are the same as for any
other write.  ``/status`` applies go through the status strategy the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ..registry.schemas.custom import CustomSchemas
from ..registry.types import ResourceType
from ..machinery.timeutil import now_rfc3339
from ..machinery import errors
from .cache import CachedObject
from .handlers import Target, _dry_run, _field_validation
from .managed_fields import (
    APPLY,
    ATOMIC,
    BEFORE_FIRST_APPLY,
    KEYED,
    MAP,
    SCALAR,
    SET,
    STRUCT,
    UPDATE,
    Entry,
    ManagerKey,
    Managers,
    Path,
    Shape,
    decode_entries,
    diff,
    effective_kind,
    encode_entries,
    ensure_named_fields,
    fieldset,
    key_element,
    manager_key,
    owned_paths,
    path_string,
    request_options,
    reset_filter,
    root_shape,
    value_element,
)

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: the only manager whose applies upgrade from client-side apply (as in Kubernetes)
KUBECTL = "kubectl"


@dataclass
class ApplyRequest:
    """One apply: the configuration, who applies it, and how."""

    rt: ResourceType
    config: Obj
    manager: str
    force: bool = False
    subresource: str = ""
    #: the API server's custom kinds (without them only built-in kinds are typed)
    schemas: CustomSchemas | None = None
    root: Shape = field(init=False)

    def __post_init__(self) -> None:
        self.root = root_shape(self.rt, self.schemas)


# ---------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------


def apply_to(live: Obj | None, req: ApplyRequest, now: str | None = None) -> Obj:
    """The object ``live`` becomes when ``req.config`` is applied (``live`` None: created).

    ``live`` is not changed.  Raises a 409 :class:`~podlife.machinery.errors.ApiError` on
    conflicts (unless forced) and a 500 one for configurations that cannot be typed
    (keyed-list items without their keys, duplicates), as Kubernetes does.
    """
    rt, root, sub = req.rt, req.root, req.subresource
    now = now or now_rfc3339()
    plain, managers = _split_live(live, rt)
    ignore = reset_filter(rt, sub)
    if not managers:
        _own_existing_fields(managers, plain, req, ignore, now)
    applied = _applied_fields(req, ignore)
    merged = merge(_deep_copy(plain), req.config, root)
    me = manager_key(req.manager, APPLY, rt.api_version, sub)
    last = managers.get(me)
    mine = Entry(req.manager, APPLY, rt.api_version, sub, last.time if last else None,
                 paths=owned_paths(applied, None))
    managers[me] = mine
    if last is not None:
        _prune(merged, managers, me, applied, last.paths, root)
    changed, removed = diff(plain, merged, root)
    changed, removed = owned_paths(changed, ignore), owned_paths(removed, ignore)
    conflicts = _conflicts(managers, me, changed)
    if conflicts and not req.force:
        conflicts = _not_upgradable(conflicts, plain, req)
        if conflicts:
            raise conflict_error(conflicts)
    _take_over(managers, me, changed | removed)
    if merged != plain or last is None:
        mine.set_time(now)
    if req.manager == KUBECTL:
        _sync_last_applied(merged, req.config)
    _store_managers(merged, managers)
    return merged


def _split_live(live: Obj | None, rt: ResourceType) -> tuple[Obj, Managers]:
    """The live object without ``managedFields`` (a private copy), and its entries."""
    if live is None:
        return {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {}}, {}
    plain = _deep_copy(live)
    meta = plain.setdefault("metadata", {})
    try:
        managers = decode_entries(meta.pop("managedFields", None))
    except ValueError as exc:
        raise errors.internal(f"failed to decode managed fields: {exc}") from None
    meta.pop("resourceVersion", None)
    return plain, managers


def _own_existing_fields(managers: Managers, plain: Obj, req: ApplyRequest, ignore: Any, now: str) -> None:
    """The first apply to an untracked object: every existing field gets an owner first."""
    changed, _ = diff({}, plain, req.root)
    owned = owned_paths(changed, ignore)
    if owned:
        entry = Entry(BEFORE_FIRST_APPLY, UPDATE, req.rt.api_version, req.subresource, now, paths=owned)
        managers[entry.key] = entry


def _applied_fields(req: ApplyRequest, ignore: Any) -> set[Path]:
    """What the configuration claims (metadata.name and the like included, reset fields not)."""
    try:
        paths = fieldset(req.config, req.root)
    except ValueError as exc:
        raise _typed_patch_error(req, str(exc)) from None
    return {p for p in paths if not ignore(p)} if ignore is not None else paths


def _typed_patch_error(req: ApplyRequest, detail: str) -> errors.ApiError:
    meta = req.config.get("metadata") or {}
    gv = req.rt.api_version if "/" in req.rt.api_version else "/" + req.rt.api_version
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}; {gv}, Kind={req.rt.kind}"
    # Kubernetes answers this one as a plain server error (no reason), and so do we
    return errors.ApiError(500, "", f"failed to create typed patch object ({where}): {detail}")


def _prune(merged: Obj, managers: Managers, me: ManagerKey, applied: set[Path], last: set[Path], root: Shape) -> None:
    """Remove what ``me`` applied last time but not now, unless someone else owns it."""
    if not last:
        return
    owned = set(applied)
    for key, entry in managers.items():
        if key != me:
            owned |= entry.paths
    doomed = ensure_named_fields(last, root) - ensure_named_fields(owned, root)
    for path in sorted(doomed, key=len):
        remove_path(merged, path, root)


def _conflicts(managers: Managers, me: ManagerKey, changed: set[Path]) -> dict[ManagerKey, set[Path]]:
    out: dict[ManagerKey, set[Path]] = {}
    for key, entry in managers.items():
        if key != me and entry.touches(changed):
            out[key] = entry.paths & changed
    return out


def _take_over(managers: Managers, me: ManagerKey, touched: set[Path]) -> None:
    """Every other manager loses the fields this apply changed or removed."""
    for key, entry in list(managers.items()):
        if key != me and entry.touches(touched):
            entry.set_paths(entry.paths - touched)
            if entry.empty():
                del managers[key]


def _store_managers(obj: Obj, managers: Managers) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = encode_entries(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


# ---------------------------------------------------------------------------
# kubectl: upgrading from client-side apply
# ---------------------------------------------------------------------------


def _not_upgradable(conflicts: dict[ManagerKey, set[Path]], plain: Obj, req: ApplyRequest) -> dict[ManagerKey, set[Path]]:
    """The conflicts left once those allowed by the last-applied annotation are dropped.

    Only for the manager ``kubectl``: a field whose live value is still the one the
    last client-side apply set is the user's own, so ``kubectl apply --server-side``
    may take it over without ``--force-conflicts``.
    """
    if req.manager != KUBECTL:
        return conflicts
    allowed = _allowed_by_last_applied(plain, req)
    if allowed is None:
        return conflicts
    left = {key: paths - allowed for key, paths in conflicts.items()}
    return {key: paths for key, paths in left.items() if paths}


def _allowed_by_last_applied(plain: Obj, req: ApplyRequest) -> set[Path] | None:
    text = ((plain.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        last = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(last) is not dict or last.get("apiVersion") != req.rt.api_version:
        return None
    try:
        fields = fieldset(last, req.root)
    except ValueError:
        return None
    changed, removed = diff(last, plain, req.root)
    return fields - changed - removed


def _sync_last_applied(merged: Obj, config: Obj) -> None:
    """Keep an existing last-applied annotation equal to what ``kubectl`` applied."""
    annotations = (merged.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED):
        return
    annotations[LAST_APPLIED] = build_last_applied(config)


def build_last_applied(config: Obj) -> str:
    """The annotation's value: the configuration without the annotation, as kubectl writes it."""
    copy = _deep_copy(config)
    meta = copy.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED, None)
    return orjson.dumps(copy, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode()


# ---------------------------------------------------------------------------
# Conflict errors
# ---------------------------------------------------------------------------


def describe_manager(key: ManagerKey, api_version: str = "") -> str:
    """``"kubectl"``, ``"x" with subresource "status"``, ``"y" using v1`` (updaters)."""
    manager, operation, version, subresource = key
    text = orjson.dumps(manager).decode()
    if subresource:
        text += f" with subresource {orjson.dumps(subresource).decode()}"
    if operation == UPDATE:
        text += f" using {version or api_version}"
    return text


def _identifier(key: ManagerKey) -> str:
    manager, operation, version, subresource = key
    ident: dict[str, str] = {"manager": manager, "operation": operation}
    if version:
        ident["apiVersion"] = version
    if subresource:
        ident["subresource"] = subresource
    return orjson.dumps(ident).decode()


def conflict_error(conflicts: dict[ManagerKey, set[Path]]) -> errors.ApiError:
    """The 409 Kubernetes answers: one ``FieldManagerConflict`` cause per field."""
    ordered = sorted(conflicts, key=_identifier)
    pairs = [(key, path) for key in ordered for path in sorted(conflicts[key])]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {describe_manager(key)}",
               "field": path_string(path)} for key, path in pairs]
    if len(pairs) == 1:
        key, path = pairs[0]
        message = f"Apply failed with 1 conflict: conflict with {describe_manager(key)}: {path_string(path)}"
    else:
        lines: list[str] = []
        for key in ordered:
            lines.append(f"conflicts with {describe_manager(key)}:")
            lines += [f"- {path_string(p)}" for p in sorted(conflicts[key])]
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return errors.ApiError(409, "Conflict", message, {"causes": causes})


# ---------------------------------------------------------------------------
# Merging and removing, by schema
# ---------------------------------------------------------------------------


def merge(live: Any, config: Any, shape: Shape) -> Any:
    """``live`` with ``config`` merged in (``live`` is changed and returned; ``config`` is not).

    Structs and granular maps merge key by key (a null in the configuration removes
    the key); keyed lists merge item by item and sets value by value, in the order
    structured-merge-diff produces; anything else is replaced.
    """
    kind = effective_kind(shape, config)
    if live is None:
        if kind in (STRUCT, MAP):
            live = {}
        elif kind in (KEYED, SET):
            live = []
    if kind != effective_kind(shape, live) or kind in (SCALAR, ATOMIC):
        return _deep_copy(config)
    if kind in (STRUCT, MAP):
        for k, v in config.items():
            if v is None:
                live.pop(k, None)
            else:
                live[k] = merge(live.get(k), v, shape.child(k)[0])
        return live
    return _merge_list(live, config, shape)


def _list_elements(items: list, shape: Shape) -> list[str] | None:
    if shape.kind == SET:
        return [value_element(v) for v in items]
    out = []
    for item in items:
        el = key_element(shape, item)
        if el is None:
            return None
        out.append(el)
    return out


def _merge_list(live: list, config: list, shape: Shape) -> list:
    """Merge two associative lists in structured-merge-diff's order.

    Items only in ``live`` keep their place; items in both follow the
    configuration's order; new items go where the configuration puts them.
    """
    rpe = _list_elements(config, shape)
    lpe = _list_elements(live, shape)
    if rpe is None or lpe is None:
        return _deep_copy(config)
    lmap: dict[str, Any] = {}
    for el, item in zip(lpe, live):
        lmap.setdefault(el, item)
    rmap = dict(zip(rpe, config))
    shared = [el for el in rpe if el in lmap]
    shared_at = 0
    next_shared = shared[0] if shared else None
    elem = shape.elem()
    out: list[Any] = []
    merged_rhs: set[str] = set()
    li = ri = 0
    while li < len(lpe) or ri < len(rpe):
        if li < len(lpe) and ri < len(rpe):
            el = lpe[li]
            if el == rpe[ri]:
                merged_rhs.add(el)
                out.append(_merge_item(lmap[el], rmap[el], elem, shape))
                li, ri = li + 1, ri + 1
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
                continue
            if el in rmap and next_shared is not None and next_shared != el:
                li += 1
                continue
        if li < len(lpe):
            el = lpe[li]
            if el not in rmap:
                out.append(live[li])
                li += 1
                continue
            if el in merged_rhs:
                li += 1
                continue
        if ri < len(rpe):
            el = rpe[ri]
            merged_rhs.add(el)
            out.append(_merge_item(lmap.get(el), rmap[el], elem, shape))
            ri += 1
            if next_shared is not None and next_shared == el:
                shared_at += 1
                next_shared = shared[shared_at] if shared_at < len(shared) else None
    return out


def _merge_item(live_item: Any, config_item: Any, elem: Shape, shape: Shape) -> Any:
    if shape.kind == SET:
        return _deep_copy(config_item)
    return merge(live_item, config_item, elem)


def remove_path(obj: Any, path: Path, root: Shape) -> None:
    """Remove the field or list item at ``path`` (nothing if absent or inside an atomic value).

    A map or list left empty goes too, as Kubernetes' typed objects drop it.
    """
    trail: list[tuple[Any, Any]] = []
    node, shape = obj, root
    for el in path:
        kind = effective_kind(shape, node)
        if kind in (STRUCT, MAP) and el[:2] == "f:":
            name = el[2:]
            if name not in node:
                return
            trail.append((node, name))
            shape, node = shape.child(name)[0], node[name]
        elif kind in (KEYED, SET):
            index = _find_item(node, el, shape)
            if index is None:
                return
            trail.append((node, index))
            shape, node = shape.elem(), node[index]
        else:
            return
    if not trail:
        return
    container, key = trail[-1]
    del container[key]
    if not container and len(trail) > 1:
        parent, parent_key = trail[-2]
        del parent[parent_key]


def _find_item(items: list, el: str, shape: Shape) -> int | None:
    for i, item in enumerate(items):
        if el[:2] == "k:":
            found = key_element(shape, item) == el
        elif el[:2] == "v:":
            found = value_element(item) == el
        else:
            found = el == f"i:{i}"
        if found:
            return i
    return None


def _deep_copy(value: Any) -> Any:
    if type(value) in (dict, list):
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    return value


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


async def serve_apply(request: web.Request, target: Target, body: Any) -> tuple[CachedObject | Obj, int]:
    """Handle an apply patch: the resulting object and 200, or 201 when it was created."""
    opts = request_options(request.query, request.headers.get("User-Agent", ""), "PatchOptions", apply=True)
    dry_run = _dry_run(request)
    mode = _field_validation(request)
    assert target.name is not None
    config = check_config(target, body)
    target.rest.run_checkers(config, mode)
    req = ApplyRequest(target.rt, config, opts.manager, opts.force, target.subresource or "",
                       schemas=target.rest.ctx.catalog.schemas)
    wanted_rv = config["metadata"].get("resourceVersion")

    def mutate(current: Obj) -> Obj:
        if wanted_rv and wanted_rv != current["metadata"].get("resourceVersion"):  # a precondition, as on update
            raise errors.conflict(target.rt, target.name or "", errors.STALE_OBJECT)
        return apply_to(current, req)

    for _ in range(2):
        try:
            result = await target.rest.guaranteed_update(target.namespace, target.name, mutate,
                                                         subresource=target.subresource, dry_run=dry_run)
            return result, 200
        except errors.ApiError as exc:
            if exc.code != 404 or exc.reason != "NotFound" or req.subresource:
                raise
        try:
            created, _ = await target.rest.create(apply_to(None, req), target.namespace, dry_run=dry_run,
                                                  field_validation=None)
            return created, 201
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise  # otherwise created meanwhile: apply to it
    raise errors.conflict(target.rt, target.name, "too many concurrent updates, please retry")


def check_config(target: Target, body: Any) -> Obj:
    """The applied configuration, checked as Kubernetes checks it (400 for what it refuses)."""
    if not isinstance(body, dict):
        raise errors.bad_request("error decoding YAML: the apply patch must be an object")
    config: Obj = _deep_copy(body)  # YAML timestamps become strings, as JSON would carry them
    rt = target.rt
    api_version, kind = config.get("apiVersion") or "", config.get("kind") or ""
    if api_version != rt.api_version or kind != rt.kind:
        group, _, version = api_version.rpartition("/")
        raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={kind}")
    meta = config.get("metadata")
    if meta is None:
        meta = config["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    if meta.get("name") and meta["name"] != target.name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})")
    if not meta.get("name"):
        meta["name"] = target.name
    if rt.namespaced and meta.get("namespace") and target.namespace and meta["namespace"] != target.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
    return config
