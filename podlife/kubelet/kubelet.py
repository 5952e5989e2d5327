"""The node agent: registers the Node, keeps its Lease, and runs the pods bound to it.

:class:`Kubelet` does what a kubelet does for the control plane to see a node:

* **Registration.** The Node object, with this machine's capacity and info
  (:mod:`podlife.node.node_status`) and the port of its log server. An
  existing Node of the same name (a restarted kubelet) is taken over: labels
  and status are brought up to date.
* **Heartbeats, the Kubernetes way.** The Lease ``kube-node-lease/<node>`` is
  renewed every 10 s (duration 40 s): that is the cheap liveness signal. The
  Node status is recomputed every 10 s but written only when something other
  than a heartbeat time changed, or every 5 minutes.
* **Pods.** An informer watches the pods with ``spec.nodeName=<node>``; its
  handlers only queue keys, and the queue's handler routes each key to the
  pod's :class:`~podlife.kubelet.pod_worker.PodWorker` (one asyncio task per
  pod uid), which does the slow work. A worker that has deleted its pod is
  remembered until the informer sees the deletion, so a late event cannot
  start the pod again.
* **Logs.** A :class:`~podlife.kubelet.server.KubeletServer` on ``address:0``
  answers ``/containerLogs/...`` for the API server, using the workers to find
  the right log file, and ``/metrics/resource`` (the containers' CPU and memory,
  :mod:`podlife.kubelet.resource_usage`) for ``kubectl top``.
* **Containers.** The runtime (:mod:`podlife.kubelet.runtimes`) is real
  containers when the machine can run them, else host processes; the Node's
  ``podlife.io/container-runtime`` and ``podlife.io/isolation`` annotations say
  which. Their logs are rotated by size (:mod:`podlife.kubelet.log_rotation`).
  Real containers outlive the agent: a new kubelet adopts them before its
  workers start, and removes those of pods that are no longer this node's once
  it has listed its pods. Stopping the kubelet stops and removes every container.
* **Node-pressure eviction.** An :class:`~podlife.kubelet.eviction.EvictionManager`
  watches memory, disk and PIDs; its pressure state is the Node's MemoryPressure,
  DiskPressure and PIDPressure conditions, and when they flip the kubelet writes the
  status at once and sets the matching ``node.kubernetes.io/*-pressure:NoSchedule``
  taints (the node lifecycle controller's job in Kubernetes; podlife has none yet).
* **Metrics.** The kubelet's Prometheus metrics (:mod:`podlife.kubelet.metrics`: pod
  startup latency, probes, evictions, running pods and containers), at its ``/metrics``.

Everything goes through :class:`~podlife.client.base.Client`, so the kubelet
runs the same in the API server's process (LocalClient) or on another host
(HTTPClient).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..machinery.errors import ApiError
from ..machinery.patch import create_merge_patch
from ..client.base import LEASES, NODES, PODS, Client, Obj
from ..client.events import EventRecorder
from ..client.informer import Informer, object_key
from ..client.workqueue import WorkQueue
from ..machinery.tasks import Supervisor
from ..node.node_status import (
    DEFAULT_MAX_PODS, LEASE_NAMESPACE, MachineInfo, lease_object, lease_spec, node_labels, node_object, node_status,
    pressure_taints, probe_machine, status_differs,
)
from .eviction import EvictionConfig, EvictionManager
from .log_rotation import ContainerLogManager, LogRotationConfig
from .metrics import kubelet_metrics, render
from .pod_worker import CNI, PodWorker, WorkerConfig
from .runtime import ProcessRuntime
from .runtimes import ContainerLike, ContainerRuntime, runtime_annotations
from .volumes import VolumeManager
from .resource_usage import ResourceUsage
from .server import KubeletServer, LogTarget
from .streams import RequestRefused
from ..node.status import rfc3339

log = logging.getLogger(__name__)

#: the Node events of a pressure condition turning True / False (Kubernetes' recordNodeStatusEvent)
_PRESSURE_EVENTS = (
    ("MemoryPressure", "NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
    ("DiskPressure", "NodeHasDiskPressure", "NodeHasNoDiskPressure"),
    ("PIDPressure", "NodeHasInsufficientPID", "NodeHasSufficientPID"),
)




@dataclass
class KubeletConfig:
    """Intervals and limits; the defaults are Kubernetes' (tests shrink them)."""

    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    max_pods: int = DEFAULT_MAX_PODS
    labels: dict[str, str] = field(default_factory=dict)
    pods: WorkerConfig = field(default_factory=WorkerConfig)
    logs: LogRotationConfig = field(default_factory=LogRotationConfig)
    #: how often unused images are collected when the disk is full (the kubelet's ImageGCPeriod)
    image_gc_period: float = 300.0
    #: node-pressure eviction (``--eviction-hard`` and friends)
    eviction: EvictionConfig = field(default_factory=EvictionConfig)


class Kubelet:
    """The agent of one node. ``await start()``, later ``await stop()``.

    ``runtime`` defaults to a :class:`ProcessRuntime` under ``root_dir``;
    ``server_token`` (default: a random one) is the bearer token the log server
    wants, so the API server must be given the same one; ``tls`` makes the endpoint
    HTTPS (its serving certificate), where the API server's client certificate is let in.
    """

    def __init__(self, client: Client, node_name: str, *, root_dir: Path | str, cni: CNI,
                 runtime: ContainerRuntime | None = None, runtime_reason: str = "",
                 address: str = "127.0.0.1",
                 config: KubeletConfig | None = None, server_token: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        #: our writes are tracked so that the pod informer skips their echoes: a worker
        #: carries on with what its status write returned and needs no wake-up for it
        self.client = client.tracking()
        self.node_name = node_name
        self.root_dir = Path(root_dir)
        self.runtime: ContainerRuntime = runtime or ProcessRuntime(self.root_dir)
        self.runtime_reason = runtime_reason or ("given" if runtime is not None else "the default for a kubelet")
        self.volumes = VolumeManager(self.client, self.root_dir, node_name=node_name)
        self.runtime.bind(self.client)
        self.cni = cni
        self.address = address
        self.config = config or KubeletConfig()
        self.server_token = server_token or secrets.token_urlsafe(32)
        self.resource_usage = ResourceUsage(self.runtime)  # /metrics/resource, what metrics-server scrapes
        #: the kubelet's Prometheus metrics (:mod:`podlife.kubelet.metrics`), served at its /metrics
        self.metrics = kubelet_metrics(lambda: self._workers.values())
        self.server = KubeletServer(self._log_target, token=self.server_token, address=address, streams=self,
                                    ssl_context=tls, resource_metrics=self.resource_usage.render_text,
                                    metrics=render(self.metrics))
        self.recorder = EventRecorder(client, "kubelet", node_name)  # events: nobody skips their echoes
        self.informer = Informer(self.client, PODS, field_selector=f"spec.nodeName={node_name}",
                                 skip_own_writes=self.client.own_writes)
        self.queue = WorkQueue()
        self.machine: MachineInfo | None = None
        self._workers: dict[str, PodWorker] = {}  # key -> the worker of the pod with that name now
        self._retiring: set[PodWorker] = set()  # workers of replaced pods, still stopping
        self._finished: dict[str, str] = {}  # key -> uid of a pod we deleted, until the informer agrees
        self._node_uid = ""
        self._last_report = 0.0
        self._tasks = Supervisor(f"kubelet {node_name}", logger=log)
        self.eviction = EvictionManager(
            self.config.eviction, root_dir=self.root_dir, runtime=self.runtime,
            volume_dir=lambda uid, name: self.volumes.volume_dir(uid, "emptyDir", name),
            workers=lambda: list(self._workers.values()), recorder=self.recorder, node_ref=self._node_ref,
            on_pressure_change=self._pressure_changed, reclaim_images=self.runtime.collect_image_garbage,
            image_dir=self.runtime.image_dir)
        self.eviction.on_evicted = self.metrics.evicted

    # ------------------------------------------------------------------ lifecycle

    @property
    def server_url(self) -> str:
        return self.server.url

    @property
    def workers(self) -> dict[str, PodWorker]:
        """The pod workers by ``namespace/name`` (read-only view for tests and tools)."""
        return dict(self._workers)

    async def start(self) -> None:
        """Register, start heartbeats and the log server, and begin running this node's pods.

        Returns once the informer has listed this node's pods; if anything fails
        on the way, what was started is stopped again.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.machine = await asyncio.to_thread(probe_machine, self.root_dir)
        log.info("kubelet %s: pods run as %s (%s)", self.node_name, self.runtime.description, self.runtime_reason)
        adopted = await self.runtime.adopt()
        if adopted:
            log.info("kubelet %s: found %d containers still running", self.node_name, adopted)
        await self.server.start()
        await self._register()
        await self._renew_lease()
        self.informer.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new),
                                   on_delete=self._enqueue)
        self._tasks.start(self.informer.run(), f"kubelet {self.node_name} informer")
        self._tasks.start(self.queue.run_workers(self._dispatch, workers=1), f"kubelet {self.node_name} queue")
        self._tasks.start(self._lease_loop(), f"kubelet {self.node_name} lease")
        self._tasks.start(self._node_status_loop(), f"kubelet {self.node_name} node status")
        self._tasks.start(self._image_gc_loop(), f"kubelet {self.node_name} image GC")
        self._tasks.start(self.eviction.run(), f"kubelet {self.node_name} eviction manager")
        if self.runtime.can_reopen_logs:
            self._tasks.start(ContainerLogManager(self.runtime, self.config.logs).run(),
                              f"kubelet {self.node_name} log rotation")
        await self.informer.wait_synced()
        await self.runtime.remove_orphans(p["metadata"].get("uid", "") for p in self.informer.cache.values())

    async def stop(self) -> None:
        """Stop everything this kubelet started: loops, pod workers, every process, the server.

        The API is left as it is (as when a kubelet stops): a new kubelet for the
        same node picks the pods up again.
        """
        await self._tasks.stop()
        workers = list(self._workers.values()) + list(self._retiring)
        await asyncio.gather(*(w.cancel() for w in workers), return_exceptions=True)
        self._workers.clear()
        self._retiring.clear()
        try:
            await self.runtime.shutdown()
        finally:  # even when removing a container failed: the mounts must not outlive the kubelet
            if self.runtime.mounts_volumes:
                await self._tear_down_volumes({w.uid for w in workers})
        await self.server.stop()
        self.metrics.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.recorder.flush(), 5)

    async def _tear_down_volumes(self, uids: set[str]) -> None:
        """The containers are gone: so are the mounts they had -- every pod's that has any (also one whose
        worker was stopped half way through its own tear-down), each on its own, so one that cannot be
        removed does not leave the others' behind."""
        for uid in sorted(uids | set(self.volumes.pods_with_volumes())):
            try:
                await self.volumes.tear_down(uid)
            except Exception:  # noqa: BLE001 - say which, go on
                log.exception("kubelet %s: the volumes of pod %s could not be torn down", self.node_name, uid)

    # ------------------------------------------------------------------ node and lease

    def _build_node_status(self, previous: Obj | None = None) -> Obj:
        assert self.machine is not None
        return node_status(self.machine, node_name=self.node_name, address=self.address, port=self.server.port,
                           now=rfc3339(), previous=previous, max_pods=self.config.max_pods,
                           pressure=self.eviction.pressure)

    async def _register(self) -> None:
        """Create the Node, or take over the one left by an earlier kubelet of this name."""
        assert self.machine is not None
        node = node_object(self.machine, node_name=self.node_name, address=self.address, port=self.server.port,
                           now=rfc3339(), labels=self.config.labels, max_pods=self.config.max_pods)
        annotations = runtime_annotations(self.runtime, self.runtime_reason)
        node["metadata"]["annotations"].update(annotations)
        try:
            created = await self.client.create(NODES, node)
        except ApiError as exc:
            if exc.code != 409:
                raise
            existing = await self.client.get(NODES, self.node_name)
            labels = node_labels(self.node_name, self.machine, self.config.labels)
            meta = existing["metadata"]
            if (any((meta.get("labels") or {}).get(k) != v for k, v in labels.items())
                    or any((meta.get("annotations") or {}).get(k) != v for k, v in annotations.items())):
                existing = await self.client.patch(NODES, self.node_name,
                                                   {"metadata": {"labels": labels, "annotations": annotations}})
            self._node_uid = existing["metadata"]["uid"]
            await self._sync_node_status(existing, force=True)
            return
        self._node_uid = created["metadata"]["uid"]
        self._last_report = asyncio.get_running_loop().time()

    async def _sync_node_status(self, node: Obj | None = None, *, force: bool = False) -> None:
        """Write the Node status if it changed (anyone's change counts) or the report is due.

        The Node is read first, as the kubelet does: a read from the watch cache
        is cheap, and it lets the kubelet correct what others wrote (a node
        controller's ``Ready=Unknown``) at the next interval.
        """
        node = node or await self.client.get(NODES, self.node_name)
        stored = node.get("status") or {}
        wanted = self._build_node_status(stored)
        due = asyncio.get_running_loop().time() - self._last_report >= self.config.node_status_report_frequency
        if force or due or status_differs(stored, wanted):
            patch = create_merge_patch(stored, wanted)
            if patch:
                await self.client.patch(NODES, self.node_name, {"status": patch}, subresource="status")
            self._last_report = asyncio.get_running_loop().time()

    async def _node_status_loop(self) -> None:
        """Every ``node_status_update_frequency``: write the status if it changed or is due."""
        interval = self.config.node_status_update_frequency
        while True:
            await asyncio.sleep(interval)
            try:
                await self._sync_node_status()
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.code == 404:  # somebody deleted our Node: register again
                    with contextlib.suppress(ApiError):
                        await self._register()
                else:
                    log.warning("kubelet %s: node status update failed: %s", self.node_name, exc)
            except Exception:
                log.exception("kubelet %s: node status update failed", self.node_name)

    async def _image_gc_loop(self) -> None:
        """Every ``image_gc_period``: remove unused images if the image disk is too full."""
        while True:
            await asyncio.sleep(self.config.image_gc_period)
            try:
                removed = await self.runtime.collect_image_garbage()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("kubelet %s: image garbage collection failed", self.node_name)
                continue
            if removed:
                log.info("kubelet %s: image GC removed %s", self.node_name, ", ".join(removed))

    def _node_ref(self) -> Obj:
        """The Node, as events name it."""
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "uid": self._node_uid}}

    async def _pressure_changed(self, previous: frozenset[str]) -> None:
        """A pressure condition flipped: write the status now, set the taints, say so in events."""
        node = await self.client.get(NODES, self.node_name)
        await self._sync_node_status(node)
        taints = (node.get("spec") or {}).get("taints") or []
        wanted = pressure_taints(taints, self.eviction.pressure)
        if wanted != taints:
            await self.client.patch(NODES, self.node_name, {"spec": {"taints": wanted or None}})
        for type_, reason_on, reason_off in _PRESSURE_EVENTS:
            now = type_ in self.eviction.pressure
            if (type_ in previous) != now:
                reason = reason_on if now else reason_off
                self.recorder.event(self._node_ref(), "Normal", reason,
                                    f"Node {self.node_name} status is now: {reason}")

    def _lease(self) -> Obj:
        return lease_object(self.node_name, self._node_uid, self.config.lease_duration_seconds)

    async def _renew_lease(self) -> None:
        """Move ``renewTime`` forward, creating the Lease when it is missing."""
        spec = lease_spec(self.node_name, self.config.lease_duration_seconds)
        try:
            await self.client.patch(LEASES, self.node_name, {"spec": spec}, LEASE_NAMESPACE)
        except ApiError as exc:
            if exc.code != 404:
                raise
            with contextlib.suppress(ApiError):  # 409: created meanwhile; the next renewal patches it
                await self.client.create(LEASES, self._lease(), LEASE_NAMESPACE)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_renew_interval)
            try:
                await self._renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kubelet %s: lease renewal failed: %s", self.node_name, exc)

    # ------------------------------------------------------------------ pods

    def _enqueue(self, pod: Obj) -> None:
        self.queue.add(object_key(pod))

    async def _dispatch(self, key: str) -> None:
        """Route the newest state of ``key`` to its worker, creating or retiring workers."""
        namespace, _, name = key.partition("/")
        pod = self.informer.get(namespace, name)
        uid = (pod or {}).get("metadata", {}).get("uid")
        if pod is None:
            self._finished.pop(key, None)
        elif self._finished.get(key) == uid:
            return  # we deleted it; the informer has not caught up yet
        else:
            self.metrics.pods.seen(pod, time.time())  # pod startup latency: the kubelet saw this version
        worker = self._workers.get(key)
        if worker is not None and (pod is None or worker.uid != uid):
            self.metrics.pods.forget(worker.uid)
            del self._workers[key]
            self._retiring.add(worker)
            worker.update(None)
            worker = None
        if pod is None:
            return
        if worker is None:
            worker = self._new_worker(pod)
        worker.update(pod)

    def _new_worker(self, pod: Obj) -> PodWorker:
        worker = PodWorker(pod, client=self.client, runtime=self.runtime, cni=self.cni, recorder=self.recorder,
                           host_ip=self.address, volumes=self.volumes, config=self.config.pods,
                           metrics=self.metrics)
        self._workers[worker.key] = worker
        worker.start(on_done=self._worker_done)
        return worker

    def _worker_done(self, worker: PodWorker) -> None:
        self._retiring.discard(worker)
        if self._workers.get(worker.key) is worker:
            del self._workers[worker.key]
            current = self.informer.get(worker.namespace, worker.name)
            if current is not None and current["metadata"].get("uid") == worker.uid:
                self._finished[worker.key] = worker.uid

    # ------------------------------------------------------------------ logs

    def _log_target(self, namespace: str, pod: str, container: str, previous: bool) -> LogTarget:
        worker = self._workers.get(f"{namespace}/{pod}")
        if worker is None:
            raise RequestRefused.not_found(f'pods "{pod}" not found')
        return worker.log_target(container, previous)

    # ------------------------------------------------------------------ streams (exec, attach, port-forward)

    def pod_uid(self, namespace: str, pod: str) -> str:
        """The uid of a pod this kubelet runs; 404 otherwise."""
        worker = self._workers.get(f"{namespace}/{pod}")
        if worker is None:
            raise RequestRefused.not_found(f'pods "{pod}" not found')
        return worker.uid

    def pod_network_namespace(self, namespace: str, pod: str) -> str | None:
        """Where port-forward dials the pod's loopback: its sandbox's network namespace (None: the host's)."""
        worker = self._workers.get(f"{namespace}/{pod}")
        if worker is None:
            raise RequestRefused.not_found(f'pods "{pod}" not found')
        return self.runtime.pod_network_namespace(worker.pod)

    def running_container(self, namespace: str, pod: str, container: str) -> ContainerLike:
        """The running instance of ``container``, as the kubelet finds it for exec and attach."""
        worker = self._workers.get(f"{namespace}/{pod}")
        if worker is None:
            raise RequestRefused.not_found(f'pods "{pod}" not found')
        for handle in self.runtime.running_containers(worker.pod_key):
            if handle.name == container and handle.running:
                return handle
        raise RequestRefused.bad_request(f'container not found ("{container}")')
