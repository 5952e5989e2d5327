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
* :mod:`.pod_worker` -- one asyncio task per pod: the driver of the node's
  pod-lifecycle state machine (:mod:`podlife.node.machine`, shared with the
  simulated nodes). It turns process exits, CNI answers and hook results into the
  machine's facts and carries out its effects: status patches, starting processes,
  ``postStart``/``preStop`` hooks, SIGTERM/SIGKILL within the grace period, the
  final delete.
* :mod:`.environment` -- a container's environment (``env``, ``envFrom``,
  ``valueFrom`` of ConfigMaps, Secrets and the downward API, ``$(VAR)``).
* :mod:`.hooks` -- running a lifecycle handler (``exec``, ``httpGet``, ``sleep``).
* :mod:`.server` -- the kubelet's HTTP endpoint (``/containerLogs/...``,
  ``/healthz``) that the API server proxies ``pods/log`` to; bearer-token
  protected.
* :mod:`.runtime` and :mod:`.logs` -- containers as process groups with
  CRI-format log files, and reading those logs with ``PodLogOptions``.

What happens to a pod is decided by the machine and carried out here, so the probes
(:mod:`.prober`: startup, liveness, readiness) only feed verdicts to their worker as
``ProbeResult`` facts; the machine turns them into ``ready``, or a kill and a restart. The kubelet's client tracks its own writes
(:class:`podlife.client.own_writes.TrackingClient`): the echoes of a worker's status
writes wake no worker.
"""
