"""A pod's life as it happened: every write to it (and to its Port, its Events, its node's
conditions while it runs there), who made it, what changed, and the stages derived from that.

The recorder (:mod:`.recorder`) follows the store's commits and keeps, per pod, the versions
it went through with the writer of each; :mod:`.journal` keeps them across restarts within a
bounded retention; :mod:`.diff` and :mod:`.stages` are pure functions over those versions;
:mod:`.model` builds the read-only ``PodTrace`` objects (``trace.podlife.io/v1alpha1``) the API
serves. Design and format: ``docs/tracing.md``.
"""
