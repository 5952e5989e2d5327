"""The node side of a pod's life, shared by the real node (``kubelet/``) and simulated ones (``sim/``).

What both kinds of node must agree on lives here once: the lifecycle rules (restart
policy, CrashLoopBackOff backoff, what a terminated container looks like:
:mod:`.lifecycle`), the pod status Kubernetes' kubelet writes, built from what the node
observed (:mod:`.status`), the Node object and its conditions (:mod:`.node_status`), and
the CNI step that plugs a pod into the port the network controller made (:mod:`.cni`).
Modules here do no I/O of their own beyond what their callers hand them; they import only
``client/`` (the object types) and ``machinery/``.
"""
