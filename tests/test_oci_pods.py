"""Kubernetes' pod and container, translated into OCI requests (the pure half of podlife.kubelet.oci_pods)."""

from __future__ import annotations

from pathlib import Path

from podlife.kubelet.oci_pods import container_request, container_resources, etc_hosts, pod_hostname, sandbox_request
from podlife.kubelet.runtime import ContainerSpec
from podlife.kubelet.volumes import VolumeMount


def pod(**spec: object) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def spec_for(the_pod: dict, container: dict, **kw: object) -> ContainerSpec:
    return ContainerSpec(name=container["name"], image=container.get("image", "busybox"), container=container,
                         pod=the_pod, **kw)  # type: ignore[arg-type]


def test_hostname_is_spec_hostname_else_the_pod_name_cut_to_63() -> None:
    assert pod_hostname(pod()) == "web-0"
    assert pod_hostname(pod(hostname="db")) == "db"
    long = {"metadata": {"name": "a" * 62 + "-b" * 5}, "spec": {}}
    assert len(pod_hostname(long)) <= 63 and not pod_hostname(long).endswith("-")


def test_sandbox_request_takes_the_host_namespaces_asked_for() -> None:
    req = sandbox_request(pod(hostNetwork=True, hostPID=True, shareProcessNamespace=True))
    assert (req.host_network, req.host_pid, req.host_ipc, req.share_process_namespace) == (True, True, False, True)
    assert req.pod.uid == "u-1" and req.hostname == "web-0"


def test_etc_hosts_has_localhost_the_pod_ips_with_fqdn_and_host_aliases() -> None:
    text = etc_hosts(pod(subdomain="web", hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo", "bar"]}]),
                     ["10.244.0.7"])
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.244.0.7\tweb-0.web.shop.svc.cluster.local\tweb-0" in lines
    assert lines[-1] == "10.1.2.3\tfoo\tbar"
    assert "10.244.0.7\tweb-0" in etc_hosts(pod(), ["10.244.0.7"]).splitlines()


def test_resources_requests_default_to_limits() -> None:
    r = container_resources({"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}})
    assert (r.cpu_request_milli, r.cpu_limit_milli, r.memory_limit_bytes) == (500, 500, 64 * 2**20)
    assert r.cpu_quota() == 50_000
    r = container_resources({"resources": {"requests": {"cpu": "2"}}})
    assert (r.cpu_request_milli, r.cpu_limit_milli, r.memory_limit_bytes) == (2000, None, None)
    assert container_resources({}).cpu_quota() is None


def test_container_security_context_wins_over_the_pods_and_fs_group_joins_the_groups() -> None:
    the_pod = pod(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                   "supplementalGroups": [4000]})
    container = {"name": "c", "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": True,
                                                  "allowPrivilegeEscalation": False,
                                                  "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    req = container_request(spec_for(the_pod, container), the_pod, None)
    assert (req.run_as_user, req.run_as_group) == (1001, 3000)
    assert list(req.supplemental_groups) == [4000, 2000]
    assert req.read_only_root_filesystem and not req.allow_privilege_escalation and not req.privileged
    assert list(req.capabilities_add) == ["NET_ADMIN"] and list(req.capabilities_drop) == ["ALL"]


def test_volumes_and_the_hosts_file_become_bind_mounts(tmp_path: Path) -> None:
    mounts = [VolumeMount(tmp_path / "cfg", "/etc/cfg", True, None), VolumeMount(tmp_path / "s", "/scratch", False, None)]
    the_pod = pod()
    req = container_request(spec_for(the_pod, {"name": "c"}, mounts=mounts), the_pod, tmp_path / "etc-hosts")
    by_dest = {m.destination: m for m in req.mounts}
    assert by_dest["/etc/cfg"].source == str(tmp_path / "cfg") and "ro" in by_dest["/etc/cfg"].options
    assert "rw" in by_dest["/scratch"].options
    assert by_dest["/etc/hosts"].source == str(tmp_path / "etc-hosts")
    # a volume mounted at /etc/hosts wins over the pod's hosts file
    own = [VolumeMount(tmp_path / "h", "/etc/hosts", True, None)]
    req = container_request(spec_for(the_pod, {"name": "c"}, mounts=own), the_pod, tmp_path / "etc-hosts")
    assert [m.source for m in req.mounts if m.destination == "/etc/hosts"] == [str(tmp_path / "h")]
