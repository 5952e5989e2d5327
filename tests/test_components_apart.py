"""``podlife scheduler`` and ``podlife controller-manager`` in their own processes, active/standby on Leases.

Real processes throughout: ``podlife server`` (the API server alone) or ``podlife up``,
``podlife sim`` for Ready nodes, the components started from the command line with
the component kubeconfigs the server writes (``DATA_DIR/kubeconfigs/*.conf``), and
kubectl to look. Every process is stopped by its pid when the test ends, also when it
fails. Leases are short in these tests (3s/2s/0.5s) so a failover happens quickly;
nothing waits a fixed time, every step waits for its condition.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from podlife.client.leaderelection import LeaderElectionConfig

from .cluster_harness import PodlifeProcess, running_podlife, stop_process, wait_for

SHORT_LEASE = ["--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
               "--leader-elect-retry-period", "0.5s"]


@dataclass
class Component:
    """One ``podlife <component>`` process and its log."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def identity(self) -> str:
        """Its leader-election identity, from its start-up line."""
        def logged() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            found = re.search(r"identity (\S+),", self.log())
            return found.group(1) if found else None

        return wait_for(logged, 60, what=f"{self.name} to log its identity")

    def wait_logged(self, text: str, timeout: float = 60) -> None:
        wait_for(lambda: text in self.log(), timeout, what=f"{self.name} to log {text!r} (log: {self.log_path})")


@contextmanager
def running_component(log_path: Path, *args: str) -> Iterator[Component]:
    """``podlife ARGS`` started in its own session, stopped by pid whatever happens."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "podlife.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield Component(args[0], proc, log_path)
    finally:
        stop_process(proc)


def component_kubeconfig(cluster: PodlifeProcess, name: str) -> str:
    return str(cluster.data_dir / "kubeconfigs" / f"{name}.conf")


def lease_holder(cluster: PodlifeProcess, name: str) -> str:
    return cluster.kubectl("get", "lease", "-n", "kube-system", name, "-o",
                           "jsonpath={.spec.holderIdentity}", check=False).stdout.strip()


def pod_node(cluster: PodlifeProcess, pod: str) -> str:
    """The NODE column of ``kubectl get pod -o wide`` (``<none>`` while unscheduled)."""
    out = cluster.kubectl("get", "pod", pod, "-o", "wide", "--no-headers").stdout.split()
    return out[6] if len(out) > 6 and out[6] != "<none>" else ""


def scheduled_event(cluster: PodlifeProcess, pod: str) -> str:
    return cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={pod},reason=Scheduled",
                           "-o", "jsonpath={.items[*].message}").stdout


def create_pod(cluster: PodlifeProcess, name: str) -> None:
    cluster.kubectl("run", name, "--image=registry.k8s.io/pause:3.9", "--restart=Never")


def assert_scheduled(cluster: PodlifeProcess, pod: str, nodes: set[str]) -> None:
    """``kubectl get pods -o wide`` shows the pod on one of ``nodes`` and a ``Scheduled`` event says so."""
    node = wait_for(lambda: pod_node(cluster, pod), 60, what=f"pod {pod} to be scheduled")
    assert node in nodes, (node, nodes)
    message = wait_for(lambda: scheduled_event(cluster, pod), 30, what=f"the Scheduled event of {pod}")
    assert f"default/{pod}" in message and node in message, message


def ready_nodes(cluster: PodlifeProcess) -> set[str]:
    items = cluster.kubectl_json("get", "nodes")["items"]
    return {n["metadata"]["name"] for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])}


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[PodlifeProcess]:
    """``podlife server``: the API server alone (no scheduler, controllers or nodes)."""
    with running_podlife(tmp_path / "cluster", command="server") as cluster:
        yield cluster


@pytest.fixture
def sim_nodes(api_server: PodlifeProcess, tmp_path: Path) -> Iterator[set[str]]:
    """Two Ready simulated nodes (``podlife sim`` as the node simulator), and the default service account that
    pods need (no controller manager makes it here)."""
    with running_component(tmp_path / "sim.log", "sim", "--kubeconfig", component_kubeconfig(api_server, "node-simulator"),
                           "--nodes", "2"):
        names = wait_for(lambda: len(ready_nodes(api_server)) == 2 and ready_nodes(api_server), 60,
                         what="two Ready simulated nodes")
        yield names


def default_service_account(cluster: PodlifeProcess) -> None:
    cluster.kubectl("create", "serviceaccount", "default")


def test_scheduler_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                      "profiles:\n- schedulerName: x\n  plugins: {score: {enabled: [{name: NoSuchPlugin}]}}\n")
    result = subprocess.run([sys.executable, "-m", "podlife.cli", "scheduler", "--kubeconfig",
                             str(tmp_path / "missing.conf"), "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert "podlife scheduler: invalid scheduler configuration" in result.stderr and "NoSuchPlugin" in result.stderr
    assert "Traceback" not in result.stderr


def test_scheduler_leader_election_settings_config_then_flags(tmp_path: Path) -> None:
    """kube-scheduler's precedence: its defaults, the config file's leaderElection, then flags given."""
    from podlife.components_cli import scheduler_election
    from podlife.scheduler.config import load_config

    assert scheduler_election(None) == LeaderElectionConfig("kube-scheduler", "kube-system")
    config = tmp_path / "scheduler.yaml"
    config.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                      "leaderElection: {leaseDuration: 30s, renewDeadline: 20s, resourceName: my-scheduler}\n")
    election = scheduler_election(load_config(config), {"renew_deadline": 5.0, "lease_duration": None})
    assert (election.resource_name, election.lease_duration, election.renew_deadline, election.retry_period) == \
        ("my-scheduler", 30.0, 5.0, 2.0)
    assert election.leader_elect


def test_external_scheduler_schedules_pods(api_server: PodlifeProcess, sim_nodes: set[str], tmp_path: Path) -> None:
    default_service_account(api_server)
    with running_component(tmp_path / "scheduler.log", "scheduler", "--kubeconfig",
                           component_kubeconfig(api_server, "scheduler")) as scheduler:
        identity = scheduler.identity()
        assert re.fullmatch(r"[^_]+_[0-9a-f-]{36}", identity), identity  # <hostname>_<uuid>
        create_pod(api_server, "first")
        assert_scheduled(api_server, "first", sim_nodes)
        assert lease_holder(api_server, "kube-scheduler") == identity
        # a clean stop: exit code 0, the Lease released for a standby to take at once
        scheduler.proc.send_signal(signal.SIGTERM)
        assert scheduler.proc.wait(30) == 0, scheduler.log()[-3000:]
        assert lease_holder(api_server, "kube-scheduler") == ""


def test_standby_scheduler_takes_over_from_a_killed_leader(api_server: PodlifeProcess, sim_nodes: set[str],
                                                           tmp_path: Path) -> None:
    default_service_account(api_server)
    kubeconfig = component_kubeconfig(api_server, "scheduler")
    with running_component(tmp_path / "s1.log", "scheduler", "--kubeconfig", kubeconfig, *SHORT_LEASE) as one, \
            running_component(tmp_path / "s2.log", "scheduler", "--kubeconfig", kubeconfig, *SHORT_LEASE) as two:
        by_identity = {one.identity(): one, two.identity(): two}
        holder = wait_for(lambda: lease_holder(api_server, "kube-scheduler") in by_identity
                          and lease_holder(api_server, "kube-scheduler"), 60, what="one scheduler to hold the Lease")
        leader = by_identity[holder]
        standby = next(c for c in by_identity.values() if c is not leader)
        standby.wait_logged(f"is held by {holder}; standing by")
        create_pod(api_server, "before")
        assert_scheduled(api_server, "before", sim_nodes)
        assert "became leader" not in standby.log()  # exactly one was leading

        os.kill(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait(30)
        create_pod(api_server, "after")
        new_holder = standby.identity()
        wait_for(lambda: lease_holder(api_server, "kube-scheduler") == new_holder, 30,
                 what="the standby to take the Lease")
        assert_scheduled(api_server, "after", sim_nodes)
        lease = api_server.kubectl_json("get", "lease", "-n", "kube-system", "kube-scheduler")
        assert lease["spec"]["leaseTransitions"] >= 1, lease


def test_scheduler_exits_when_it_loses_the_lease(tmp_path: Path) -> None:
    """The API server gone: the leader cannot renew, stops, logs "leaderelection lost" and exits 1."""
    with running_podlife(tmp_path / "cluster", command="server") as cluster:
        with running_component(tmp_path / "scheduler.log", "scheduler", "--kubeconfig",
                               component_kubeconfig(cluster, "scheduler"), *SHORT_LEASE) as scheduler:
            identity = scheduler.identity()
            wait_for(lambda: lease_holder(cluster, "kube-scheduler") == identity, 60, what="the scheduler to lead")
            cluster.stop()
            assert scheduler.proc.wait(60) == 1, scheduler.log()[-3000:]
            assert "leaderelection lost" in scheduler.log()


def test_external_controller_manager_runs_controllers_and_the_network(api_server: PodlifeProcess,
                                                                      sim_nodes: set[str], tmp_path: Path) -> None:
    data = api_server.data_dir
    with running_component(tmp_path / "scheduler.log", "scheduler", "--kubeconfig",
                           component_kubeconfig(api_server, "scheduler")), \
            running_component(tmp_path / "kcm.log", "controller-manager", "--kubeconfig",
                              component_kubeconfig(api_server, "controller-manager"),
                              "--use-service-account-credentials",
                              "--service-account-private-key-file", str(data / "pki" / "sa.key")) as manager:
        identity = manager.identity()
        wait_for(lambda: lease_holder(api_server, "kube-controller-manager") == identity, 60,
                 what="the controller manager to lead")
        # the service account controller makes the default account (no hand-made one here)
        wait_for(lambda: api_server.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 60,
                 what="the default service account")
        api_server.kubectl("create", "deployment", "web", "--image=registry.k8s.io/pause:3.9", "--replicas=2")
        wait_for(lambda: api_server.kubectl_json("get", "replicasets", "-l", "app=web")["items"], 60,
                 what="the Deployment's ReplicaSet")

        def scheduled_web_pods() -> list[dict] | None:
            pods = api_server.kubectl_json("get", "pods", "-l", "app=web")["items"]
            return pods if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods) else None

        pods = wait_for(scheduled_web_pods, 60, what="two scheduled pods of the Deployment")
        for pod in pods:
            name = pod["metadata"]["name"]
            port = wait_for(lambda name=name: api_server.kubectl_json("get", "ports.network.podlife.io", name), 60,
                            what=f"the network Port of {name}")
            assert port["metadata"]["name"] == name
        # the ReplicaSet controller created the pods as its own service account (TokenRequest credentials)
        accounts = api_server.kubectl("get", "serviceaccounts", "-n", "kube-system", "-o", "name").stdout
        assert "serviceaccount/replicaset-controller" in accounts and "serviceaccount/network-controller" in accounts
        assert "Traceback" not in manager.log(), manager.log()[-3000:]


def test_external_components_stand_by_for_an_all_in_one_cluster(tmp_path: Path) -> None:
    from podlife.nodenet.names import cluster_id

    data = tmp_path / "cluster"
    with running_podlife(data, "--nodes", "0", "--sim-nodes", "1") as cluster:
        in_process = wait_for(lambda: lease_holder(cluster, "kube-scheduler"), 60, what="the in-process scheduler's Lease")
        assert in_process.endswith("_" + cluster_id(data)), in_process
        manager_holder = wait_for(lambda: lease_holder(cluster, "kube-controller-manager"), 60,
                                  what="the in-process controller manager's Lease")
        with running_component(tmp_path / "scheduler.log", "scheduler", "--kubeconfig",
                               component_kubeconfig(cluster, "scheduler"), *SHORT_LEASE) as scheduler, \
                running_component(tmp_path / "kcm.log", "controller-manager", "--kubeconfig",
                                  component_kubeconfig(cluster, "controller-manager"),
                                  "--use-service-account-credentials", *SHORT_LEASE) as manager:
            scheduler.wait_logged(f"is held by {in_process}; standing by")
            manager.wait_logged(f"is held by {manager_holder}; standing by")
            nodes = wait_for(lambda: ready_nodes(cluster), 60, what="the simulated node to be Ready")
            wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 60,
                     what="the default service account")
            create_pod(cluster, "while-standing-by")
            assert_scheduled(cluster, "while-standing-by", nodes)
            assert lease_holder(cluster, "kube-scheduler") == in_process
            assert lease_holder(cluster, "kube-controller-manager") == manager_holder
            assert "became leader" not in scheduler.log() and "became leader" not in manager.log()
            assert scheduler.proc.poll() is None and manager.proc.poll() is None
