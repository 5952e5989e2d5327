"""What an admission plugin is, for the ordered list of :mod:`podlife.api.admission`.

Kubernetes' admission plugins (``k8s.io/apiserver/pkg/admission``) come in two phases, and
so do podlife's. Every half is given the API resource's REST (``rest``), the object, the
stored one (``old``: None on create) and the request's :class:`Attributes`, and returns the
warnings for the answer's ``Warning`` headers (usually none); it refuses by raising an
:class:`~podlife.machinery.errors.ApiError`. A half that has to wait (ServiceAccount waiting
for its account, a webhook's call) returns an awaitable of the warnings instead, and the
chain awaits it; the others stay plain functions, so a write pays no coroutine for them.

- a *mutator* (Kubernetes' ``MutationInterface.Admit``) runs before the object's own
  validation and may change it: ``mutate(rest, obj, old, attrs)``.
- a *validator* (``ValidationInterface.Validate``) runs after validation, and only looks:
  ``validate(rest, obj, old, attrs)``.
- a *delete validator* is a validator's turn on a delete, which has no new object:
  ``validate_delete(rest, old, attrs)`` with the stored object.

Which writes a plugin is asked about is declared, not tested per request: the resources
(``(group, plural)``; None: every resource), the operations, and which requests by their
subresource it sees (:data:`OBJECT`: the object itself; :data:`SUBRESOURCE`: a client's
``status``/``finalize``/... write; :data:`SERVER_WRITE`: the API server's own writes,
subresource :data:`INTERNAL`). :mod:`podlife.api.admission` picks each resource's plugins once.

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

CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"
#: the subresource of writes the API server makes itself (binding, scale, finalization)
INTERNAL = "internal"
#: the kinds of request a plugin may see, by subresource (see the module docstring)
OBJECT, SUBRESOURCE, SERVER_WRITE = "object", "subresource", "server-write"

CREATE_ONLY = frozenset({CREATE})
CREATE_AND_UPDATE = frozenset({CREATE, UPDATE})
ALL_OPERATIONS = frozenset({CREATE, UPDATE, DELETE})
OBJECT_ONLY = frozenset({OBJECT})

Warnings = list[str]
Answer = Warnings | Awaitable[Warnings]


@dataclass(frozen=True, slots=True)
class Attributes:
    """The request as admission sees it (the parts of Kubernetes' ``admission.Attributes``
    the plugins read; the user is :data:`~podlife.api.rbac_guard.CURRENT_USER`)."""

    operation: str
    #: None or "" for the object itself
    subresource: str | None = None
    dry_run: bool = False

    @property
    def kind_of_request(self) -> str:
        """:data:`OBJECT`, :data:`SUBRESOURCE` or :data:`SERVER_WRITE`."""
        if not self.subresource:
            return OBJECT
        return SERVER_WRITE if self.subresource == INTERNAL else SUBRESOURCE


Mutator = Callable[["ResourceREST", Obj, "Obj | None", Attributes], Answer]
Validator = Callable[["ResourceREST", Obj, "Obj | None", Attributes], Answer]
DeleteValidator = Callable[["ResourceREST", Obj, Attributes], Answer]


@dataclass(frozen=True)
class AdmissionPlugin:
    """One of kube-apiserver's plugins: its name (``--disable-admission-plugins``), what it
    is asked about, and its halves."""

    name: str
    #: the ``(group, plural)`` it acts on; None: every resource
    resources: frozenset[tuple[str, str]] | None = None
    operations: frozenset[str] = CREATE_AND_UPDATE
    #: which requests it sees, by their subresource (:data:`OBJECT` ...)
    sees: frozenset[str] = OBJECT_ONLY
    mutate: Mutator | None = None
    validate: Validator | None = None
    validate_delete: DeleteValidator | None = None

    def handles(self, group: str, plural: str, operation: str, kind_of_request: str) -> bool:
        return ((self.resources is None or (group, plural) in self.resources) and operation in self.operations
                and kind_of_request in self.sees)


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
