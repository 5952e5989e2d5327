"""The node side of a pod's life, shared by the real node (``kubelet/``) and simulated ones (``sim/``).

What both kinds of node must agree on lives here once:

* :mod:`.machine` -- **the pod lifecycle as a state machine**: facts in (a container
  started or exited, the sandbox is up, a probe failed, the pod is being deleted), effects
  out (write the status, start or kill containers, record an event, wake at T). It decides
  phase, container states, restart counts, ``lastState``, the CrashLoopBackOff and image
  pull back-offs, terminal phases and graceful termination, and does no I/O. The kubelet
  carries its effects out with processes, the simulator with timers and stage files.
* :mod:`.lifecycle` -- the small rules the machine uses (restart policy, the back-off
  object, Go durations, image IDs, reading a terminated state back from the API).
* :mod:`.status` -- the pod status Kubernetes' kubelet writes, built from container views
  (pure functions), and the status merge patch.
* :mod:`.node_status` -- the Node object, its conditions, labels and nodeInfo.
* :mod:`.cni` -- the CNI step that plugs a pod into the port the network controller made.

Modules here do no I/O of their own beyond what their callers hand them; they import only
``client/`` (the object types) and ``machinery/``.
"""
