"""Validation shared by every kind: names, labels, annotations, object metadata.

The rules and messages follow Kubernetes' apimachinery validation so that a user sees
the same error for the same mistake (e.g. an upper-case pod name). Besides name,
namespace, labels, annotations (256 KiB in total) and finalizers, ``ownerReferences``
follow ``ValidateOwnerReferences`` (``k8s.io/apimachinery/pkg/api/validation/objectmeta.go``):
apiVersion, kind, name and uid required, at most one ``controller: true``; and a
``generateName`` must be a valid name prefix.
"""

from __future__ import annotations

from typing import Any

from ..machinery.names import (
    dns1123_label_errors, dns1123_subdomain_errors, label_value_errors, path_segment_errors, qualified_name_errors,
)
from .rbac import GoValue
from .types import FieldError, invalid, required

NAME_RULES = {
    "label": dns1123_label_errors,
    "subdomain": dns1123_subdomain_errors,
    "path": path_segment_errors,
}


def validate_metadata(meta: Any, *, namespaced: bool, name_rule: str) -> list[FieldError]:
    if not isinstance(meta, dict):
        return [required("metadata")]
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            errs.append(required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        errs.append(invalid("metadata.name", name, "must be a string"))
    else:
        errs += [invalid("metadata.name", name, m) for m in NAME_RULES[name_rule](name)]
    if namespaced:
        ns = meta.get("namespace")
        if not ns:
            errs.append(required("metadata.namespace"))
        elif not isinstance(ns, str):
            errs.append(invalid("metadata.namespace", ns, "must be a string"))
        else:
            errs += [invalid("metadata.namespace", ns, m) for m in dns1123_label_errors(ns)]
    generate = meta.get("generateName")
    if generate and isinstance(generate, str) and not name:
        errs += [invalid("metadata.generateName", generate, m) for m in NAME_RULES[name_rule](_prefix_stem(generate))]
    errs += _validate_labels(meta.get("labels"))
    errs += _validate_annotations(meta.get("annotations"))
    errs += validate_owner_references(meta.get("ownerReferences"))
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list):
            errs.append(invalid("metadata.finalizers", finalizers, "must be a list of strings"))
        else:
            for i, f in enumerate(finalizers):
                if not isinstance(f, str) or qualified_name_errors(f):
                    errs.append(invalid(f"metadata.finalizers[{i}]", f, "must be a qualified name"))
    return errs


def _prefix_stem(prefix: str) -> str:
    """A generateName is checked as a name with its trailing dashes dropped (Kubernetes' ``prefix`` mode)."""
    stem = prefix.rstrip("-")
    return stem or "a"


def validate_owner_references(refs: Any) -> list[FieldError]:
    """``ValidateOwnerReferences``: each names its owner fully; one controller at most."""
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [invalid("metadata.ownerReferences", refs, "must be a list")]
    errs: list[FieldError] = []
    first_controller = ""
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            errs.append(invalid(f"metadata.ownerReferences[{i}]", ref, "must be an object"))
            continue
        for key, word in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(key):
                errs.append(invalid(f"metadata.ownerReferences.{key}", str(ref.get(key) or ""), f"{word} must not be empty"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind')}/{ref.get('name')}"
            if first_controller:
                errs.append(invalid("metadata.ownerReferences", GoValue("[]v1.OwnerReference{...}"),
                                    'Only one reference can have Controller set to true. Found "true" in references for '
                                    f"{first_controller} and {current}"))
            else:
                first_controller = current
    return errs


def validate_label_map(labels: Any) -> list[FieldError]:
    """A label map's keys and values (paths under ``metadata.labels``)."""
    return _validate_labels(labels)


def validate_annotation_map(annotations: Any) -> list[FieldError]:
    """An annotation map's keys and total size (paths under ``metadata.annotations``)."""
    return _validate_annotations(annotations)


def _validate_labels(labels: Any) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid("metadata.labels", labels, "must be a map of strings")]
    errs = []
    for k, v in labels.items():
        errs += [invalid("metadata.labels", k, m) for m in qualified_name_errors(k)]
        if not isinstance(v, str):
            errs.append(invalid(f"metadata.labels[{k}]", v, "must be a string"))
        else:
            errs += [invalid(f"metadata.labels[{k}]", v, m) for m in label_value_errors(v)]
    return errs


def _validate_annotations(annotations: Any) -> list[FieldError]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid("metadata.annotations", annotations, "must be a map of strings")]
    errs = []
    total = 0
    for k, v in annotations.items():
        errs += [invalid("metadata.annotations", k, m) for m in qualified_name_errors(k)]
        if not isinstance(v, str):
            errs.append(invalid(f"metadata.annotations[{k}]", v, "must be a string"))
        else:
            total += len(k) + len(v)
    if total > 256 * 1024:
        errs.append(FieldError("FieldValueTooLong", "metadata.annotations", "must have at most 262144 bytes"))
    return errs
