"""What an admission plugin is, for the plugins of :mod:`podlife.api.admission`'s registries.

Kubernetes' admission plugins (``k8s.io/apiserver/pkg/admission``) come in two phases, and
so do podlife's:

- a *mutator* (Kubernetes' ``MutationInterface.Admit``) runs before the object's own
  validation and may change it: ``await mutate(rest, obj, old)``; ``old`` is None on
  create, the stored object on update. It refuses with an :class:`~podlife.machinery.errors.ApiError`.
- a *validator* (``ValidationInterface.Validate``) runs after validation and the mutating
  webhooks, and only looks: ``validate(rest, obj, old)``, raising to refuse.

:func:`refuse` words a refusal as ``admission.NewForbidden`` does: 403 ``Forbidden``,
``<resource> "<name>" is forbidden: <why>``, details naming the object (the name is the
``generateName`` prefix when the object has no name yet, as Kubernetes words it before
names are generated).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..machinery import errors
from ..registry.types import Obj

if TYPE_CHECKING:
    from .rest import ResourceREST

Mutator = Callable[["ResourceREST", Obj, "Obj | None"], Awaitable[None]]
Validator = Callable[["ResourceREST", Obj, "Obj | None"], None]


@dataclass(frozen=True)
class AdmissionPlugin:
    """One of kube-apiserver's plugins: its name (``--disable-admission-plugins``), the
    ``(group, plural)`` it acts on, and its mutating and validating halves."""

    name: str
    resources: frozenset[tuple[str, str]]
    mutate: Mutator | None = None
    validate: Validator | None = None


def object_name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "Unknown")


def refuse(rest: ResourceREST, obj: Obj, why: str) -> errors.ApiError:
    """The 403 a plugin answers with (``admission.NewForbidden``)."""
    name = object_name(obj)
    return errors.forbidden(f'{rest.rt.group_resource} "{name}" is forbidden: {why}', rest.rt, name)


def own_spec(obj: Obj) -> Obj:
    """``obj``'s spec as a copy of its own to change: on update, the object a plugin is given
    may share its spec with the watch cache (a merge patch's shallow read)."""
    spec = dict(obj.get("spec") or {})
    obj["spec"] = spec
    return spec
