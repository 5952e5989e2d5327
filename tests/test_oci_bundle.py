"""Unit tests of the OCI layer's pure parts: Kubernetes' resource arithmetic, config.json,
the image catalog, the host-class rootfs (on a fake host tree) and cgroup files (on a fake
cgroupfs). No root, runc or conmon needed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from podlife.kubelet.oci.bundle import (
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_PATH,
    DEFAULT_READONLY_PATHS,
    BundleSpec,
    Mount,
    Namespace,
    bind_mount,
    build_config,
    capabilities,
)
from podlife.kubelet.oci.cgroups import CgroupLayout, container_cgroup_path, detect_layout, pod_cgroup_path
from podlife.kubelet.oci.images import (
    HostImage,
    ImageCatalog,
    ImageNotFoundError,
    container_argv,
    default_catalog,
    normalize_image_name,
)
from podlife.kubelet.oci.resources import ContainerResources, linux_resources, milli_cpu_to_quota, milli_cpu_to_shares
from podlife.kubelet.oci.rootfs import LAYER_REFERENCES, overlay_supported, prepare_rootfs
from podlife.kubelet.oci.runc import runc_message

# ---------------------------------------------------------------- resources (pkg/kubelet/cm/helpers_linux.go)


@pytest.mark.parametrize(
    ("milli", "shares"),
    [(0, 2), (1, 2), (2, 2), (100, 102), (250, 256), (500, 512), (1000, 1024), (2000, 2048), (10**6, 262144)],
)
def test_cpu_shares_from_requests(milli: int, shares: int) -> None:
    assert milli_cpu_to_shares(milli) == shares


@pytest.mark.parametrize(("milli", "quota"), [(0, 0), (1, 1000), (5, 1000), (10, 1000), (250, 25000), (1500, 150000)])
def test_cfs_quota_from_limits(milli: int, quota: int) -> None:
    assert milli_cpu_to_quota(milli) == quota


def test_quota_scales_with_the_period() -> None:
    assert milli_cpu_to_quota(500, 50_000) == 25_000


def test_linux_resources_of_a_limited_container() -> None:
    res = ContainerResources(cpu_request_milli=250, cpu_limit_milli=500, memory_limit_bytes=64 << 20, pids_limit=100)
    assert linux_resources(res) == {
        "devices": [{"allow": False, "access": "rwm"}],
        "cpu": {"shares": 256, "quota": 50000, "period": 100000},
        "memory": {"limit": 64 << 20, "swap": 64 << 20},
        "pids": {"limit": 100},
    }


def test_best_effort_gets_min_shares_and_no_limits() -> None:
    assert linux_resources(ContainerResources()) == {"devices": [{"allow": False, "access": "rwm"}], "cpu": {"shares": 2}}


def test_shares_come_from_the_limit_when_no_request() -> None:
    assert ContainerResources(cpu_limit_milli=1000).cpu_shares() == 1024


# ---------------------------------------------------------------- capabilities (containerd's defaults)


def test_default_capabilities_are_containerds_fourteen() -> None:
    assert capabilities() == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES and "CAP_NET_RAW" in DEFAULT_CAPABILITIES


def test_capabilities_add_and_drop_take_kubernetes_names() -> None:
    caps = capabilities(add=["NET_ADMIN", "sys_time"], drop=["NET_RAW", "CAP_MKNOD"])
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps
    assert "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps


def test_drop_all_then_add() -> None:
    assert capabilities(add=["NET_BIND_SERVICE"], drop=["ALL"]) == ["CAP_NET_BIND_SERVICE"]


def test_privileged_gets_every_capability() -> None:
    assert "CAP_SYS_ADMIN" in capabilities(privileged=True)


def test_unknown_capability_is_named() -> None:
    with pytest.raises(ValueError, match="NOT_A_CAP"):
        capabilities(add=["NOT_A_CAP"])


# ---------------------------------------------------------------- config.json


def _spec(**overrides: object) -> BundleSpec:
    base: dict[str, object] = {
        "args": ["/bin/sh", "-c", "echo hi"],
        "namespaces": [Namespace("mount"), Namespace("pid"), Namespace("uts")],
        "hostname": "web",
    }
    base.update(overrides)
    return BundleSpec(**base)  # type: ignore[arg-type]


def test_config_process_defaults() -> None:
    config = build_config(_spec(env={"A": "1"}, uid=1000, gid=3000, additional_gids=[4000], cwd="/srv"))
    process = config["process"]
    assert process["args"] == ["/bin/sh", "-c", "echo hi"]
    assert process["env"] == ["A=1", f"PATH={DEFAULT_PATH}"]
    assert process["user"] == {"uid": 1000, "gid": 3000, "additionalGids": [4000]}
    assert process["cwd"] == "/srv"
    assert process["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert process["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert "inheritable" not in process["capabilities"] and "ambient" not in process["capabilities"]
    assert process["noNewPrivileges"] is False
    assert config["hostname"] == "web"
    assert config["root"] == {"path": "rootfs", "readonly": False}


def test_env_path_is_kept_when_set() -> None:
    assert build_config(_spec(env={"PATH": "/x"}))["process"]["env"] == ["PATH=/x"]


def test_config_linux_defaults_and_limits() -> None:
    config = build_config(
        _spec(cgroups_path="/podlife/uid/cid", resources=ContainerResources(memory_limit_bytes=1 << 26), readonly_rootfs=True)
    )
    linux = config["linux"]
    assert linux["cgroupsPath"] == "/podlife/uid/cid"
    assert linux["resources"]["memory"] == {"limit": 1 << 26, "swap": 1 << 26}
    assert linux["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert linux["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    assert config["root"]["readonly"] is True


def test_standard_mounts_and_extra_mounts() -> None:
    config = build_config(_spec(mounts=[bind_mount("/usr", "/usr")]))
    by_dest = {m["destination"]: m for m in config["mounts"]}
    assert by_dest["/proc"]["type"] == "proc"
    assert by_dest["/dev"]["type"] == "tmpfs"
    assert "ro" in by_dest["/sys"]["options"]
    assert by_dest["/usr"] == {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "nosuid", "nodev", "ro"]}


def test_joined_namespaces_carry_their_paths() -> None:
    config = build_config(
        _spec(
            hostname=None,
            namespaces=[Namespace("mount"), Namespace("pid"), Namespace("network", "/proc/42/ns/net"), Namespace("uts", "/proc/42/ns/uts")],
        )
    )
    assert config["linux"]["namespaces"] == [
        {"type": "mount"},
        {"type": "pid"},
        {"type": "network", "path": "/proc/42/ns/net"},
        {"type": "uts", "path": "/proc/42/ns/uts"},
    ]
    assert "hostname" not in config


def test_a_read_only_root_covers_the_mounts_that_stand_for_part_of_it() -> None:
    etc = Mount("/etc", "overlay", "overlay", ("lowerdir=/l", "upperdir=/u", "workdir=/w"), part_of_root=True)
    mounts = [etc, bind_mount("/srv/cfg", "/etc/cfg")]
    writable = build_config(_spec(mounts=mounts))
    assert writable["linux"]["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    read_only = build_config(_spec(mounts=mounts, readonly_rootfs=True))
    assert read_only["linux"]["readonlyPaths"] == [*DEFAULT_READONLY_PATHS, "/etc"]
    privileged = build_config(_spec(mounts=mounts, readonly_rootfs=True, privileged=True))
    assert privileged["linux"]["readonlyPaths"] == ["/etc"] and "maskedPaths" not in privileged["linux"]
    by_dest = {m["destination"]: m for m in read_only["mounts"]}
    assert by_dest["/etc"] == {"destination": "/etc", "type": "overlay", "source": "overlay",
                               "options": ["lowerdir=/l", "upperdir=/u", "workdir=/w"]}


def test_no_new_privileges_and_privileged() -> None:
    assert build_config(_spec(no_new_privileges=True))["process"]["noNewPrivileges"] is True
    privileged = build_config(_spec(privileged=True))
    assert "maskedPaths" not in privileged["linux"] and "readonlyPaths" not in privileged["linux"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"args": []}, "process.args"),
        ({"cwd": "relative"}, "process.cwd"),
        ({"namespaces": [Namespace("mount")]}, "hostname"),
        ({"namespaces": [Namespace("uts"), Namespace("uts")]}, "given twice"),
    ],
)
def test_bad_specs_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_config(_spec(**overrides))


def test_unknown_namespace_type() -> None:
    with pytest.raises(ValueError, match="namespace type"):
        Namespace("time")


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("ref", "key"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("docker.io/library/busybox:latest", "busybox"),
        ("registry.k8s.io/pause:3.9", "pause"),
        ("localhost:5000/team/python:3.12-slim", "python"),
        ("nginx@sha256:" + "a" * 64, "nginx"),
    ],
)
def test_image_names_are_normalized(ref: str, key: str) -> None:
    assert normalize_image_name(ref) == key


def test_command_and_args_combine_as_kubernetes_does() -> None:
    image = HostImage("x", entrypoint=("/ep",), cmd=("default",))
    assert container_argv(image, [], []) == ["/ep", "default"]
    assert container_argv(image, [], ["a"]) == ["/ep", "a"]
    assert container_argv(image, ["/c"], []) == ["/c"]
    assert container_argv(image, ["/c"], ["a"]) == ["/c", "a"]


def test_default_catalog_has_the_host_class_images() -> None:
    catalog = default_catalog()
    assert {"busybox", "alpine", "debian", "ubuntu", "python", "nginx", "pause"} <= set(catalog.images)
    assert catalog.images["python"].cmd == ("python3",)
    assert catalog.images["pause"].entrypoint == ("/usr/bin/sleep", "infinity")
    assert catalog.images["busybox"].applets == "/usr/bin/busybox"


def test_unknown_image_says_how_to_provide_it() -> None:
    with pytest.raises(ImageNotFoundError) as err:
        default_catalog().resolve("quay.io/someone/unheard-of:1")
    assert err.value.reason == "ErrImagePull"
    assert "node image catalog" in err.value.message and "busybox" in err.value.message


def test_image_with_missing_host_files_names_the_package(tmp_path: Path) -> None:
    catalog = ImageCatalog.from_yaml(
        "images:\n  nginx:\n    cmd: [nginx]\n    requires: [/usr/sbin/nginx]\n    packages: [nginx-light]\n", host_root=tmp_path
    )
    with pytest.raises(ImageNotFoundError, match="nginx-light"):
        catalog.resolve("nginx")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("images: []", "images:"),
        ("images:\n  a:\n    cmd: 3\n", "images.a.cmd"),
        ("images:\n  a:\n    colour: red\n", "images.a: unknown field"),
        ("images:\n  a:\n    working_dir: rel\n", "images.a.working_dir"),
    ],
)
def test_bad_catalogs_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageCatalog.from_yaml(text)


# ---------------------------------------------------------------- rootfs (host image class)


def _fake_host(root: Path) -> Path:
    for d in ("usr/bin", "usr/lib", "usr/sbin", "lib64", "etc/ssl/certs", "etc/ssh", "root", "work", "home/u"):
        (root / d).mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    os.symlink("usr/lib", root / "lib")
    for name, text in {"passwd": "root:x:0:0::/root:/bin/sh\n", "group": "root:x:0:\n", "shadow": "root:secret\n",
                       "pip.conf": "[global]\ntoken=secret\n", "ssl/certs/ca.pem": "CERT\n", "ssh/ssh_host_key": "KEY\n",
                       "hostname": "the-host\n", "hosts": "10.1.2.3 the-host\n"}.items():
        (root / "etc" / name).write_text(text)
    os.symlink("/usr/share/zoneinfo/UTC", root / "etc" / "localtime")
    return root


def test_rootfs_binds_system_dirs_read_only_and_copies_an_etc_allow_list(tmp_path: Path) -> None:
    host = _fake_host(tmp_path / "host")
    bundle = tmp_path / "bundle"
    mounts = prepare_rootfs(bundle, HostImage("debian", etc=("shadow",)), hostname="web", host_root=host,
                            share_layers=False)
    rootfs = bundle / "rootfs"
    binds = {m.destination: m for m in mounts if m.type == "bind"}
    assert set(binds) == {"/usr", "/lib64"}
    assert all("ro" in m.options for m in binds.values())
    assert os.readlink(rootfs / "bin") == "usr/bin" and os.readlink(rootfs / "lib") == "usr/lib"
    tmpfs = {m.destination for m in mounts if m.type == "tmpfs"}
    assert tmpfs == {"/tmp", "/var/tmp", "/run"}
    etc = rootfs / "etc"
    assert (etc / "passwd").read_text().startswith("root:")
    assert (etc / "ssl/certs/ca.pem").read_text() == "CERT\n"
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/UTC"
    assert not (etc / "shadow").exists() and not (etc / "pip.conf").exists() and not (etc / "ssh").exists()
    assert (etc / "hostname").read_text() == "web\n"
    assert "the-host" not in (etc / "hosts").read_text() and "web" in (etc / "hosts").read_text()
    sources = {m.source for m in mounts}
    assert not any(s.startswith((str(host / "root"), str(host / "work"), str(host / "home"))) for s in sources)
    assert list((rootfs / "root").iterdir()) == [] and list((rootfs / "home").iterdir()) == []


@pytest.mark.parametrize("share", [False, True])
def test_rootfs_is_idempotent(tmp_path: Path, share: bool) -> None:
    host = _fake_host(tmp_path / "host")
    first = prepare_rootfs(tmp_path / "b", HostImage("debian"), host_root=host, share_layers=share)
    assert prepare_rootfs(tmp_path / "b", HostImage("debian"), host_root=host, share_layers=share) == first


def _fake_busybox(host: Path) -> None:
    """A multi-call binary that lists three applets (``--list``), as busybox does."""
    binary = host / "usr/bin/busybox"
    binary.write_text("#!/bin/sh\nprintf 'sh\\nls\\nwget\\n'\n")
    binary.chmod(0o755)


def _overlays(mounts: list[Mount]) -> dict[str, dict[str, Path]]:
    """destination -> {"lowerdir": ..., "upperdir": ..., "workdir": ...} of each overlay mount."""
    out = {}
    for m in mounts:
        if m.type == "overlay":
            assert m.part_of_root
            out[m.destination] = {k: Path(v) for k, _, v in (o.partition("=") for o in m.options)}
    return out


def test_containers_of_an_image_share_read_only_layers_and_own_what_they_write(tmp_path: Path) -> None:
    host = _fake_host(tmp_path / "host")
    _fake_busybox(host)
    image = HostImage("busybox", applets="/usr/bin/busybox", etc=("shadow",), dirs=("/opt/busybox/data", "/var/log/bb"))
    bundles, layers = tmp_path / "containers", tmp_path / "layers"
    a = _overlays(prepare_rootfs(bundles / "a", image, hostname="web-a", host_root=host, layers_dir=layers,
                                 share_layers=True))
    b = _overlays(prepare_rootfs(bundles / "b", image, hostname="web-b", host_root=host, layers_dir=layers,
                                 share_layers=True))
    assert set(a) == set(b) == {"/etc", "/opt"}
    etc = a["/etc"]["lowerdir"]
    assert etc == b["/etc"]["lowerdir"] and etc.parent == layers  # one layer, made once
    assert (etc / "passwd").read_text().startswith("root:")
    assert (etc / "ssl/certs/ca.pem").read_text() == "CERT\n"
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/UTC"
    assert not (etc / "shadow").exists() and not (etc / "pip.conf").exists() and not (etc / "ssh").exists()
    assert not (etc / "hostname").exists() and not (etc / "hosts").exists()  # those are each container's
    for name, overlays in (("a", a), ("b", b)):
        upper = overlays["/etc"]["upperdir"]
        assert upper.parent == bundles / name and overlays["/etc"]["workdir"].parent == bundles / name
        assert (upper / "hostname").read_text() == f"web-{name}\n"
        assert f"web-{name}" in (upper / "hosts").read_text() and "the-host" not in (upper / "hosts").read_text()
        assert (overlays["/opt"]["upperdir"] / "busybox/data").is_dir()  # an image dir below an overlay
        assert (bundles / name / "rootfs/var/log/bb").is_dir()
        assert list((bundles / name / "rootfs/etc").iterdir()) == []  # the mount point only
        assert (bundles / name / LAYER_REFERENCES).read_text().split() == [etc.name, overlays["/opt"]["lowerdir"].name]
    applets = a["/opt"]["lowerdir"] / "busybox/bin"
    assert sorted(p.name for p in applets.iterdir()) == ["ls", "sh", "wget"]
    assert os.readlink(applets / "sh") == "/usr/bin/busybox"


def test_a_changed_host_etc_gets_a_new_layer_and_layers_nobody_uses_go(tmp_path: Path) -> None:
    host = _fake_host(tmp_path / "host")
    bundles, layers = tmp_path / "containers", tmp_path / "layers"

    def etc_layer(name: str) -> Path:
        mounts = prepare_rootfs(bundles / name, HostImage("debian"), host_root=host, layers_dir=layers,
                                share_layers=True)
        return _overlays(mounts)["/etc"]["lowerdir"]

    first = etc_layer("a")
    assert etc_layer("b") == first
    with open(host / "etc/passwd", "a") as f:  # changed in place
        f.write("app:x:1000:1000::/home/app:/bin/sh\n")
    second = etc_layer("c")
    assert second != first and "app:x:1000" in (second / "passwd").read_text()
    assert first.is_dir()  # containers a and b still use it
    (host / "etc/ssl/certs/new.pem").write_text("NEW\n")  # added below a copied directory
    shutil.rmtree(bundles / "a")
    shutil.rmtree(bundles / "b")  # what the runtime does when it removes a container
    third = etc_layer("d")
    assert (third / "ssl/certs/new.pem").read_text() == "NEW\n"
    assert not first.exists() and second.is_dir()  # c still uses the second
    assert sorted(p.name for p in layers.iterdir()) == sorted([second.name, third.name])


def test_overlays_are_not_used_where_mount_options_cannot_name_the_layers(tmp_path: Path) -> None:
    assert overlay_supported(tmp_path / "a,b") is False
    assert overlay_supported(tmp_path / "a:b") is False


# ---------------------------------------------------------------- cgroups

HYBRID_MOUNTINFO = """\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,xattr,name=systemd
"""

UNIFIED_MOUNTINFO = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_detect_hybrid_layout_is_v1() -> None:
    layout = detect_layout(HYBRID_MOUNTINFO)
    assert layout is not None and layout.version == 1
    assert layout.mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert layout.mounts["cpu"] == layout.mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert layout.mounts[""] == Path("/sys/fs/cgroup/unified")
    dirs = layout.hierarchy_dirs("/podlife/u")
    assert Path("/sys/fs/cgroup/cpu,cpuacct/podlife/u") in dirs and Path("/sys/fs/cgroup/systemd/podlife/u") in dirs
    assert len(dirs) == len(set(dirs))


def test_detect_unified_layout() -> None:
    layout = detect_layout(UNIFIED_MOUNTINFO)
    assert layout is not None and layout.version == 2
    assert layout.controller_dir("memory", "/podlife/u") == Path("/sys/fs/cgroup/podlife/u")


def test_no_cgroups_mounted() -> None:
    assert detect_layout("") is None


def test_cgroup_paths() -> None:
    assert pod_cgroup_path("uid-1") == "/podlife/uid-1"
    assert container_cgroup_path("uid-1", "abc") == "/podlife/uid-1/abc"


def _fake_v1(tmp_path: Path) -> CgroupLayout:
    mounts = {c: tmp_path / c for c in ("memory", "cpu", "cpuacct", "pids")}
    for m in mounts.values():
        m.mkdir()
    return CgroupLayout(1, mounts)


def test_v1_stats_oom_and_pod_limits(tmp_path: Path) -> None:
    layout = _fake_v1(tmp_path)
    layout.create_pod("/podlife/u", ContainerResources(cpu_request_milli=500, cpu_limit_milli=250, memory_limit_bytes=1 << 27))
    assert (tmp_path / "cpu/podlife/u/cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu/podlife/u/cpu.cfs_quota_us").read_text() == "25000"
    assert (tmp_path / "cpu/podlife/u/cpu.cfs_period_us").read_text() == "100000"
    assert (tmp_path / "memory/podlife/u/memory.limit_in_bytes").read_text() == str(1 << 27)
    c = "/podlife/u/c1"
    for d in ("memory", "cpuacct", "pids"):
        (tmp_path / d / c.lstrip("/")).mkdir(parents=True)
    (tmp_path / "memory/podlife/u/c1/memory.usage_in_bytes").write_text("1000\n")
    (tmp_path / "memory/podlife/u/c1/memory.stat").write_text("cache 5\ntotal_inactive_file 300\n")
    (tmp_path / "memory/podlife/u/c1/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (tmp_path / "cpuacct/podlife/u/c1/cpuacct.usage").write_text("123456789\n")
    (tmp_path / "pids/podlife/u/c1/pids.current").write_text("3\n")
    stats = layout.stats(c)
    assert (stats.memory_usage_bytes, stats.memory_working_set_bytes, stats.cpu_usage_nanoseconds, stats.pids) == (1000, 700, 123456789, 3)
    assert layout.oom_kills(c) == 1
    assert layout.oom_kills("/podlife/u/absent") is None


def test_v2_stats(tmp_path: Path) -> None:
    layout = CgroupLayout(2, {"": tmp_path})
    d = tmp_path / "podlife/u/c1"
    d.mkdir(parents=True)
    (d / "memory.current").write_text("4096\n")
    (d / "memory.stat").write_text("anon 10\ninactive_file 1024\n")
    (d / "cpu.stat").write_text("usage_usec 42\nuser_usec 40\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    stats = layout.stats("/podlife/u/c1")
    assert (stats.memory_usage_bytes, stats.memory_working_set_bytes, stats.cpu_usage_nanoseconds) == (4096, 3072, 42000)
    assert layout.oom_kills("/podlife/u/c1") == 2


def test_remove_takes_descendants_deepest_first(tmp_path: Path) -> None:
    layout = _fake_v1(tmp_path)
    for d in ("memory", "pids"):
        (tmp_path / d / "podlife/u/c1").mkdir(parents=True)
    assert layout.remove("/podlife/u") == []
    assert not layout.exists("/podlife/u")
    assert (tmp_path / "memory/podlife").is_dir()


# ---------------------------------------------------------------- runc's messages


def test_runc_message_is_taken_from_its_log_line() -> None:
    stderr = 'time="2024-01-01T00:00:00Z" level=error msg="exec: \\"nope\\": executable file not found in $PATH"\n'
    assert runc_message(stderr) == 'exec: "nope": executable file not found in $PATH'
    assert runc_message("plain failure\n") == "plain failure"
