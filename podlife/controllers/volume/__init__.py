"""The storage controllers of kube-controller-manager: binder, protection, expander, ephemeral volumes.

- :mod:`.binder` (``persistentvolume-binder-controller``) binds claims to volumes and reclaims released ones;
- :mod:`.protection` (``persistentvolume-protection-controller``, ``persistentvolumeclaim-protection-controller``)
  removes the protection finalizers once a volume or claim is no longer in use;
- :mod:`.expander` (``persistentvolume-expander-controller``) grows volumes whose claim asks for more;
- :mod:`.ephemeral` (``ephemeral-volume-controller``) creates the claims of pods' generic ephemeral volumes.

The shared names and the claim-to-volume match are in :mod:`podlife.machinery.storage`.
"""
