"""The Job controller (``--controllers job``): see :mod:`.controller` for its design.

The package splits it as Kubernetes' ``pkg/controller/job`` does: pure decisions in
:mod:`.tracking` (counting with finalizers), :mod:`.indexed` (completion indexes,
interval strings), :mod:`.failure_policy` (podFailurePolicy, successPolicy),
:mod:`.finish` (terminal conditions), :mod:`.manage` (pods to create and delete),
:mod:`.backoff`; the side effects in :mod:`.controller`.
"""

from .controller import JobController

__all__ = ["JobController"]
