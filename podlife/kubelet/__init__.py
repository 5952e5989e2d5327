"""The kubelet: runs the pods bound to this node as real processes.

Design
------
The kubelet is a client of the API like any other component: everything it
learns and says goes through :class:`podlife.client.base.Client`, so it runs in
the API server's process or on another machine unchanged.

* :mod:`.kubelet` -- the node agent. Registers the Node (this machine's real
  capacity), renews the Lease ``kube-node-lease/<node>`` every 10 s, writes the
  Node status only when it changes or every 5 minutes (Kubernetes' defaults),
  watches ``pods?fieldSelector=spec.nodeName=<node>`` with an informer and
  routes each change, through a work queue, to the pod's worker.
* :mod:`.lifecycle` -- restart policy, crash-loop back-off and image/duration helpers,
  shared with the simulated nodes.
* :mod:`.pod_worker` -- one asyncio task per pod. It owns everything about its
  pod, reacts to new pod versions, container exits and timers, and writes the
  status in the order Kubernetes does (``ContainerCreating``, then the pod IP
  from the CNI step, then ``Running``); runs ``postStart``/``preStop`` hooks;
  restarts containers per the restart policy with the crash-loop backoff; on
  deletion stops them (preStop, SIGTERM, grace, SIGKILL), writes their final
  state and removes the pod from the API.
* :mod:`.environment` -- a container's environment (``env``, ``envFrom``,
  ``valueFrom`` of ConfigMaps, Secrets and the downward API, ``$(VAR)``).
* :mod:`.hooks` -- running a lifecycle handler (``exec``, ``httpGet``, ``sleep``).
* :mod:`.status` -- pure functions from container views to the API ``status``
  (phase, conditions, containerStatuses), after Kubernetes' ``generate.go`` and
  ``getPhase``. Status writes are merge patches of what changed, and an
  unchanged status costs no write: the kubelet's request budget goes to real
  transitions.
* :mod:`.node_status` -- the Node object: capacity, allocatable, nodeInfo,
  conditions, measured from ``/proc`` and ``/etc/os-release``.
* :mod:`.server` -- the kubelet's HTTP endpoint (``/containerLogs/...``,
  ``/healthz``) that the API server proxies ``pods/log`` to; bearer-token
  protected.
* :mod:`.runtime` and :mod:`.logs` -- containers as process groups with
  CRI-format log files, and reading those logs with ``PodLogOptions``.

What a pod worker decides and what the API shows are kept apart: the worker
keeps per-container facts (newest instance, the one before, backoff), and
:mod:`.status` derives the API view from them, so readiness probes (a later
addition) only have to feed a verdict into ``PodWorker.set_readiness``.
"""
