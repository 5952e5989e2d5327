"""Validation shared by every kind: names, labels, annotations, object metadata.

The rules and messages follow Kubernetes' apimachinery validation so that a user sees
the same error for the same mistake (e.g. an upper-case pod name).
"""

from __future__ import annotations

from typing import Any

from ..machinery.names import (
    dns1123_label_errors, dns1123_subdomain_errors, label_value_errors, path_segment_errors, qualified_name_errors,
)
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
    errs += _validate_labels(meta.get("labels"))
    errs += _validate_annotations(meta.get("annotations"))
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list):
            errs.append(invalid("metadata.finalizers", finalizers, "must be a list of strings"))
        else:
            for i, f in enumerate(finalizers):
                if not isinstance(f, str) or qualified_name_errors(f):
                    errs.append(invalid(f"metadata.finalizers[{i}]", f, "must be a qualified name"))
    return errs


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
