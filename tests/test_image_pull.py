"""Real image pulls: Debian's docker-registry on loopback, images the tests build, podlife's ImageStore.

The whole pull path is real: the tests build layers (busybox-static's binary and a few
applet links, then a layer with a whiteout and an opaque directory), push them with
plain HTTP blob uploads and manifest PUTs to ``docker-registry serve`` on
127.0.0.1, and pull them with :class:`~podlife.kubelet.oci.image_store.ImageStore`:
digests checked, whiteouts applied, config fields read, a platform picked from an
index, a corrupted blob refused, token and Basic auth, loading OCI layouts, the CLI,
image GC on a small tmpfs, and a container run by runc on a pulled image's root.

Registries are stopped by pid and container roots released (unmounted) by fixtures,
also when a test fails; the last check of each store fixture is that nothing of it is
still mounted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from podlife.kubelet.oci.bundle import BundleSpec, Namespace, build_config, write_config
from podlife.kubelet.oci.image_store import ImageStore, ImageStoreError, StoredImage, mount_points, resolve_user
from podlife.kubelet.oci.images import container_argv
from podlife.kubelet.oci.registry import InvalidReferenceError, PullError, PullErrorKind, parse_reference
from tests.cluster_harness import missing
from tests.registry_harness import (
    BUSYBOX,
    BuiltImage,
    Entry,
    Layer,
    RegistryProcess,
    TokenServer,
    build_image,
    busybox_rootfs_entries,
    directory,
    file,
    free_port,
    hardlink,
    make_layer,
    symlink,
    write_oci_layout,
)

pytestmark = pytest.mark.timeout(180)

REPO = "podlife-test/busybox"
PROCESS = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["echo hello from the image"],
    "Env": ["PATH=/bin", "GREETING=hello", "EMPTY="],
    "WorkingDir": "/app",
    "User": "app",
    "StopSignal": "SIGQUIT",
}


def _require_root() -> None:
    if os.geteuid() != 0:
        missing("unpacking layers (device whiteouts, trusted xattrs) and overlay mounts need root")


def busybox_image(*, docker: bool = False, marker: str = "v1") -> BuiltImage:
    """Two layers: a busybox root with files to delete, then a whiteout, an opaque dir and new files."""
    base = make_layer([
        *busybox_rootfs_entries(),
        file("etc/doomed", "removed by the next layer\n"),
        file("etc/kept", "still here\n"),
        directory("data"),
        directory("data/old"),
        file("data/old/a.txt", "hidden by the opaque dir\n"),
        file("data/old/b.txt", "hidden too\n"),
    ])
    top = make_layer([
        file("etc/.wh.doomed", ""),
        directory("data/old"),
        file("data/old/.wh..wh..opq", ""),
        file("data/old/new.txt", "only this one\n"),
        directory("app"),
        file("app/marker", f"{marker}\n"),
    ])
    return build_image([base, top], docker=docker, **PROCESS)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    proc = RegistryProcess(tmp_path_factory.mktemp("registry")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def pushed(registry: RegistryProcess) -> tuple[BuiltImage, str]:
    """The busybox image pushed as ``podlife-test/busybox:v1``; (image, manifest digest)."""
    image = busybox_image()
    return image, registry.push(REPO, "v1", image)


async def _release_everything(store: ImageStore) -> None:
    for target in list(store.prepared_roots()):
        await store.release_rootfs(Path(target))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ImageStore]:
    _require_root()
    image_store = ImageStore(tmp_path / "store", platform="linux/amd64")
    try:
        yield image_store
    finally:
        await _release_everything(image_store)
        assert not [p for p in mount_points() if p.startswith(str(tmp_path))], "mounts left behind"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _assert_no_leftovers(store: ImageStore) -> None:
    assert store.list() == []
    assert list(store.layers_dir.iterdir()) == []
    assert [p for p in store.tmp_dir.iterdir()] == []


# ---------------------------------------------------------------- pulling


async def test_pull_checks_digests_and_reads_the_config(store: ImageStore, registry: RegistryProcess,
                                                        pushed: tuple[BuiltImage, str]) -> None:
    image, manifest_digest = pushed
    assert manifest_digest == image.manifest_digest  # what the registry computed

    pulled = await store.pull(f"{registry.host}/{REPO}:v1")

    assert pulled.id == image.config_digest
    assert pulled.references == (f"{registry.host}/{REPO}:v1",)
    assert pulled.repo_digest == f"{registry.host}/{REPO}@{image.manifest_digest}"
    assert pulled.manifest_digest == image.manifest_digest
    assert pulled.layers == tuple(layer.diff_id for layer in image.layers)
    assert pulled.size == len(image.config) + sum(len(layer.blob) for layer in image.layers)
    assert pulled.entrypoint == ("/bin/sh", "-c")
    assert pulled.cmd == ("echo hello from the image",)
    assert dict(pulled.env) == {"PATH": "/bin", "GREETING": "hello", "EMPTY": ""}
    assert pulled.working_dir == "/app"
    assert pulled.user == "app"
    assert pulled.stop_signal == "SIGQUIT"
    assert pulled.platform == "linux/amd64"
    # Kubernetes' command/args rule over the image's Entrypoint/Cmd
    assert container_argv(pulled, [], []) == ["/bin/sh", "-c", "echo hello from the image"]  # type: ignore[arg-type]
    assert container_argv(pulled, [], ["echo args"]) == ["/bin/sh", "-c", "echo args"]  # type: ignore[arg-type]
    assert container_argv(pulled, ["/bin/echo"], ["x"]) == ["/bin/echo", "x"]  # type: ignore[arg-type]

    # found again by reference, by digest reference, by ID; the store's blobs are the registry's
    assert store.get(f"{registry.host}/{REPO}:v1") == pulled
    assert store.get(f"{registry.host}/{REPO}@{image.manifest_digest}") == pulled
    assert store.get(pulled.id) == pulled
    assert store.get(f"{registry.host}/{REPO}:other") is None
    assert store.blob_path(image.config_digest).read_bytes() == image.config
    assert store.blob_path(image.manifest_digest).read_bytes() == image.manifest

    # a second pull reuses what is there and gives the same image
    again = await store.pull(f"{registry.host}/{REPO}:v1")
    assert again.id == pulled.id and len(store.list()) == 1


async def test_layers_are_unpacked_in_overlay_form(store: ImageStore, registry: RegistryProcess,
                                                   pushed: tuple[BuiltImage, str]) -> None:
    image, _ = pushed
    await store.pull(f"{registry.host}/{REPO}:v1")
    top = store.layer_path(image.layers[1].diff_id)
    whiteout = os.lstat(top / "etc/doomed")
    assert whiteout.st_rdev == 0 and (whiteout.st_mode & 0o170000) == 0o020000, "whiteout is a char device 0:0"
    assert os.getxattr(top / "data/old", "trusted.overlay.opaque") == b"y"
    assert not (top / "data/old/.wh..wh..opq").exists()


@pytest.mark.parametrize("mode", ["overlay", "copy"])
async def test_container_root_applies_whiteouts(tmp_path: Path, registry: RegistryProcess,
                                                pushed: tuple[BuiltImage, str], mode: str) -> None:
    _require_root()
    store = ImageStore(tmp_path / "store", platform="linux/amd64", rootfs_mode=mode)  # type: ignore[arg-type]
    try:
        image = await store.pull(f"{registry.host}/{REPO}:v1")
        root = tmp_path / "bundle" / "rootfs"
        assert await store.prepare_rootfs(image, root) == []
        assert (str(root) in mount_points()) == (mode == "overlay")
        assert hashlib.sha256((root / "bin/busybox").read_bytes()).digest() == hashlib.sha256(BUSYBOX.read_bytes()).digest()
        assert os.readlink(root / "bin/sh") == "busybox"
        assert not os.path.lexists(root / "etc/doomed"), "the whiteout deletes the lower layer's file"
        assert (root / "etc/kept").read_text() == "still here\n"
        assert sorted(os.listdir(root / "data/old")) == ["new.txt"], "the opaque dir hides the lower layer's files"
        assert (root / "app/marker").read_text() == "v1\n"
        assert oct((root / "tmp").stat().st_mode & 0o7777) == oct(0o1777)
        # the container's writes stay in its own root, never in the store's layers
        (root / "etc/kept").write_text("changed\n")
        (root / "app/marker").unlink()
        second = tmp_path / "bundle2" / "rootfs"
        await store.prepare_rootfs(image, second)
        assert (second / "etc/kept").read_text() == "still here\n"
        assert (second / "app/marker").exists()
        await store.release_rootfs(root)
        await store.release_rootfs(second)
        assert not root.exists() and not Path(f"{root}.upper").exists() and not Path(f"{root}.work").exists()
        assert store.prepared_roots() == {}
    finally:
        await _release_everything(store)
    assert not [p for p in mount_points() if p.startswith(str(tmp_path))]


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-manifest-list"])
async def test_manifest_list_picks_the_platform(tmp_path: Path, registry: RegistryProcess, docker: bool) -> None:
    _require_root()
    repo = f"podlife-test/multi-{'docker' if docker else 'oci'}"
    amd64 = build_image([make_layer([file("arch", "amd64\n")])], docker=docker, Env=["ARCH=amd64"], Cmd=["sh"])
    arm64 = build_image([make_layer([file("arch", "arm64\n")])], architecture="arm64", variant="v8", docker=docker,
                        Env=["ARCH=arm64"], Cmd=["sh"])
    attestation = {"mediaType": amd64.media_type, "digest": amd64.manifest_digest, "size": len(amd64.manifest),
                   "platform": {"os": "unknown", "architecture": "unknown"}}
    index_digest = registry.push_index(repo, "latest", [arm64, amd64], extra=[attestation], docker=docker)

    stores = {}
    for platform in ("linux/amd64", "linux/arm64", "linux/aarch64/v8"):
        stores[platform] = ImageStore(tmp_path / platform.replace("/", "-"), platform=platform)
        image = await stores[platform].pull(f"{registry.host}/{repo}")
        want = amd64 if platform == "linux/amd64" else arm64
        assert image.id == want.config_digest
        assert image.manifest_digest == want.manifest_digest
        assert image.repo_digest == f"{registry.host}/{repo}@{index_digest}", "the repo digest is the index's"
        assert image.references == (f"{registry.host}/{repo}:latest",)
        assert dict(image.env)["ARCH"] == want.platform["architecture"]

    default = ImageStore(tmp_path / "host")  # this machine's platform
    host_image = await default.pull(f"{registry.host}/{repo}:latest")
    assert dict(host_image.env)["ARCH"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "?")

    with pytest.raises(PullError) as caught:
        await ImageStore(tmp_path / "s390x", platform="linux/s390x").pull(f"{registry.host}/{repo}:latest")
    assert caught.value.not_found
    assert str(caught.value) == (f'failed to pull and unpack image "{registry.host}/{repo}:latest": '
                                 "no match for platform in manifest: not found")


async def test_a_corrupted_blob_is_refused(store: ImageStore, registry: RegistryProcess) -> None:
    repo = "podlife-test/corrupt"
    image = build_image([make_layer([file("payload", os.urandom(4096))])], Cmd=["sh"])
    registry.push(repo, "v1", image)
    stored = registry.stored_blob(image.layers[0].digest)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content: only the digest can tell
    stored.write_bytes(bytes(data))

    with pytest.raises(PullError) as caught:
        await store.pull(f"{registry.host}/{repo}:v1")
    assert caught.value.kind is PullErrorKind.CORRUPT
    message = str(caught.value)
    assert message.startswith(f'failed to pull and unpack image "{registry.host}/{repo}:v1": failed to copy: '
                              "unexpected commit digest sha256:")
    assert message.endswith(f", expected {image.layers[0].digest}: failed precondition")
    assert store.get(f"{registry.host}/{repo}:v1") is None
    _assert_no_leftovers(store)

    # the good twin: with the blob intact again, the same pull succeeds
    stored.write_bytes(image.layers[0].blob)
    assert (await store.pull(f"{registry.host}/{repo}:v1")).id == image.config_digest


async def test_not_found_unreachable_and_invalid_references(store: ImageStore, registry: RegistryProcess,
                                                            pushed: tuple[BuiltImage, str]) -> None:
    missing_tag = f"{registry.host}/{REPO}:nosuchtag"
    with pytest.raises(PullError) as caught:
        await store.pull(missing_tag)
    assert caught.value.not_found
    assert str(caught.value) == (f'failed to pull and unpack image "{missing_tag}": failed to resolve reference '
                                 f'"{missing_tag}": {missing_tag}: not found')

    with pytest.raises(PullError) as caught:
        await store.pull(f"{registry.host}/podlife-test/nosuchrepo")
    assert caught.value.not_found and caught.value.image == f"{registry.host}/podlife-test/nosuchrepo:latest"

    port = free_port()  # nothing listens there
    with pytest.raises(PullError) as caught:
        await store.pull(f"127.0.0.1:{port}/podlife-test/busybox:v1")
    assert caught.value.unreachable
    assert str(caught.value) == (
        f'failed to pull and unpack image "127.0.0.1:{port}/podlife-test/busybox:v1": failed to resolve reference '
        f'"127.0.0.1:{port}/podlife-test/busybox:v1": failed to do request: Get '
        f'"http://127.0.0.1:{port}/v2/podlife-test/busybox/manifests/v1": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )

    for bad, detail in [
        (f"{registry.host}/Podlife/Busybox:v1", "invalid reference format: repository name (Podlife/Busybox) must be lowercase"),
        ("busybox:bad tag", "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("", "invalid reference format"),
    ]:
        with pytest.raises(InvalidReferenceError) as invalid:
            await store.pull(bad)
        assert str(invalid.value) == f'couldn\'t parse image name "{bad}": {detail}'
    assert [image.id for image in store.list()] == []


def test_reference_normalization() -> None:
    digest = "sha256:" + "a" * 64
    cases = {
        "busybox": "docker.io/library/busybox:latest",
        "busybox:1.36": "docker.io/library/busybox:1.36",
        "library/busybox": "docker.io/library/busybox:latest",
        "team/app:v2": "docker.io/team/app:v2",
        "index.docker.io/team/app": "docker.io/team/app:latest",
        "registry.k8s.io/pause:3.9": "registry.k8s.io/pause:3.9",
        "localhost/app": "localhost/app:latest",
        "127.0.0.1:5000/a/b/c:t": "127.0.0.1:5000/a/b/c:t",
        f"busybox@{digest}": f"docker.io/library/busybox@{digest}",
        f"127.0.0.1:5000/app:v1@{digest}": f"127.0.0.1:5000/app:v1@{digest}",
    }
    assert {text: str(parse_reference(text)) for text in cases} == cases
    ref = parse_reference(f"127.0.0.1:5000/app@{digest}")
    assert (ref.domain, ref.path, ref.tag, ref.digest, ref.locator) == ("127.0.0.1:5000", "app", None, digest, digest)


# ---------------------------------------------------------------- auth


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[RegistryProcess, TokenServer]]:
    tokens = TokenServer(tmp_path, {"alice": "s3cret"}).start()
    proc = RegistryProcess(tmp_path / "token-registry", token_server=tokens, push_credentials=("alice", "s3cret"))
    try:
        proc.start()
        yield proc, tokens
    finally:
        proc.stop()
        tokens.stop()


async def test_bearer_token_auth(store: ImageStore, token_registry: tuple[RegistryProcess, TokenServer]) -> None:
    registry, tokens = token_registry
    image = busybox_image(marker="private")
    registry.push("podlife-test/private", "v1", image)
    name = f"{registry.host}/podlife-test/private:v1"

    with pytest.raises(PullError) as anonymous:
        await store.pull(name)
    assert anonymous.value.unauthorized
    assert str(anonymous.value) == (
        f'failed to pull and unpack image "{name}": failed to resolve reference "{name}": pull access denied, '
        "repository does not exist or may require authorization: server message: "
        "unauthorized: authentication required"
    )
    with pytest.raises(PullError) as wrong:
        await store.pull(name, credentials={registry.host: ("alice", "wrong")})
    assert wrong.value.unauthorized
    assert "failed to authorize: failed to fetch oauth token: unexpected status from GET request to " in str(wrong.value)
    assert str(wrong.value).endswith(": 401 Unauthorized")
    _assert_no_leftovers(store)

    tokens.requests.clear()
    pulled = await store.pull(name, credentials={registry.host: ("alice", "s3cret")})
    assert pulled.id == image.config_digest
    assert tokens.requests, "the client asked the token server"
    assert {(r["service"], r["scope"]) for r in tokens.requests} == {("podlife-test-registry",
                                                                      "repository:podlife-test/private:pull")}
    assert all(r["authorization"].startswith("Basic ") for r in tokens.requests)


async def test_basic_auth(store: ImageStore, tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path / "basic-registry", htpasswd={"bob": "hunter2"}, push_credentials=("bob", "hunter2"))
    try:
        registry.start()
        image = busybox_image(marker="basic")
        registry.push("podlife-test/basic", "v1", image)
        name = f"{registry.host}/podlife-test/basic:v1"
        with pytest.raises(PullError) as caught:
            await store.pull(name)
        assert caught.value.unauthorized and "authentication required" in str(caught.value)
        with pytest.raises(PullError) as wrong:
            await store.pull(name, credentials={registry.host: ("bob", "nope")})
        assert wrong.value.unauthorized
        assert (await store.pull(name, credentials={f"http://{registry.host}": ("bob", "hunter2")})).id == image.config_digest
    finally:
        registry.stop()


# ---------------------------------------------------------------- load, ls, rm


async def test_load_an_oci_layout_directory_and_tar(store: ImageStore, tmp_path: Path) -> None:
    first = busybox_image(marker="loaded")
    second = build_image([make_layer([file("only", "x")])], Cmd=["true"])
    layout = write_oci_layout(tmp_path / "layout", [("example.com/team/app:v1", first), (None, second)])

    loaded = await store.load(layout)
    assert [image.id for image in loaded] == [first.config_digest, second.config_digest]
    assert loaded[0].references == ("example.com/team/app:v1",)
    assert loaded[0].repo_digest == f"example.com/team/app@{first.manifest_digest}"
    assert loaded[1].references == () and loaded[1].repo_digest is None
    assert {image.id for image in store.list()} == {first.config_digest, second.config_digest}

    root = tmp_path / "root"
    await store.prepare_rootfs(loaded[0], root)
    assert (root / "app/marker").read_text() == "loaded\n" and not os.path.lexists(root / "etc/doomed")
    await store.release_rootfs(root)

    await store.remove("example.com/team/app:v1")
    await store.remove(second.config_digest[7:19])  # a unique ID prefix
    _assert_no_leftovers(store)
    with pytest.raises(ImageStoreError, match='no such image "example.com/team/app:v1"'):
        await store.remove("example.com/team/app:v1")

    archive = tmp_path / "layout.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    again = await store.load(archive)
    assert [image.id for image in again] == [first.config_digest, second.config_digest]

    broken = tmp_path / "broken"
    shutil.copytree(layout, broken)
    (broken / "blobs/sha256" / first.config_digest[7:]).write_bytes(b"{}")
    with pytest.raises(ImageStoreError, match=f"blob {first.config_digest}: 2 bytes, the descriptor says"):
        await store.load(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageStoreError, match="neither an OCI image layout"):
        await store.load(empty)


async def test_load_a_docker_archive(store: ImageStore, tmp_path: Path) -> None:
    layer = make_layer([*busybox_rootfs_entries(), file("hello", "docker\n")], compress=False)
    image = build_image([layer], Cmd=["sh"])
    archive = tmp_path / "archive"
    (archive / "abc").mkdir(parents=True)
    (archive / "abc/layer.tar").write_bytes(layer.blob)
    (archive / "config.json").write_bytes(image.config)
    (archive / "manifest.json").write_text(json.dumps([{"Config": "config.json", "RepoTags": ["busybox:docker"],
                                                        "Layers": ["abc/layer.tar"]}]))
    loaded = await store.load(archive)
    assert [(i.id, i.references) for i in loaded] == [(image.config_digest, ("docker.io/library/busybox:docker",))]
    assert store.get("busybox:docker") == loaded[0]


async def test_a_tag_moves_to_the_newly_pulled_image(store: ImageStore, registry: RegistryProcess) -> None:
    repo = "podlife-test/moving"
    old = build_image([make_layer([file("v", "1")])], Cmd=["old"])
    new = build_image([make_layer([file("v", "2")])], Cmd=["new"])
    registry.push(repo, "latest", old)
    first = await store.pull(f"{registry.host}/{repo}")
    registry.push(repo, "latest", new)
    second = await store.pull(f"{registry.host}/{repo}:latest")
    assert first.id != second.id
    by_id = {image.id: image for image in store.list()}
    assert by_id[second.id].references == (f"{registry.host}/{repo}:latest",)
    assert by_id[first.id].references == (), "the old image lost the tag but keeps its repo digest"
    assert store.get(f"{registry.host}/{repo}@{old.manifest_digest}") == by_id[first.id]


@pytest.mark.parametrize("entries, complaint", [
    ([file("/etc/evil", "x")], '"/etc/evil": absolute paths are not allowed in a layer'),
    ([file("../evil", "x")], '"../evil": ".." would leave the layer'),
    ([file("a/../../evil", "x")], '"a/../../evil": ".." would leave the layer'),
    ([symlink("escape", "/OUTSIDE"), file("escape/evil", "x")], '"escape/evil" goes through the symbolic link "escape"'),
    ([symlink("up", "../../.."), file("up/evil", "x")], '"up/evil" goes through the symbolic link "up"'),
    ([hardlink("link", "../../outside")], '"../../outside": ".." would leave the layer'),
    ([hardlink("link", "/etc/passwd")], '"/etc/passwd": absolute paths are not allowed in a layer'),
    ([symlink("s", "/etc"), hardlink("link", "s/passwd")], 'hard link "link" to "s/passwd": not a file of this layer'),
], ids=["absolute", "dotdot", "inner-dotdot", "symlink-abs", "symlink-up", "hardlink-dotdot", "hardlink-abs", "hardlink-symlink"])
async def test_layers_that_escape_are_refused(store: ImageStore, tmp_path: Path, entries: list[Entry], complaint: str) -> None:
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    evil = make_layer([file("ok", "fine"), *[_retarget(e, outside) for e in entries]])
    image = build_image([evil], Cmd=["sh"])
    layout = write_oci_layout(tmp_path / "layout", [("example.com/evil:v1", image)])
    with pytest.raises(ImageStoreError) as caught:
        await store.load(layout)
    assert complaint.replace("/OUTSIDE", str(outside)) in str(caught.value)
    assert list(outside.iterdir()) == [] and not (tmp_path / "evil").exists()
    _assert_no_leftovers(store)

    good = build_image([make_layer([file("ok", "fine"), directory("escape"), file("escape/fine", "x")])], Cmd=["sh"])
    assert [i.id for i in await store.load(write_oci_layout(tmp_path / "good", [("example.com/good:v1", good)]))] == [
        good.config_digest]


def _retarget(entry: Entry, outside: Path) -> Entry:
    """Point an ``/OUTSIDE`` symlink at this test's directory outside the store."""
    if entry.target == "/OUTSIDE":
        return symlink(entry.name, str(outside))
    return entry


# ---------------------------------------------------------------- garbage collection


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, so that a few small images move its usage by whole percents."""
    _require_root()
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    assert str(mount) not in mount_points()


def _usage_percent(store: ImageStore) -> int:
    capacity, available = store.filesystem_usage()
    return 100 - available * 100 // capacity


async def test_image_gc_removes_least_recently_used_unused_images(small_fs: Path, tmp_path: Path) -> None:
    store = ImageStore(small_fs / "images", platform="linux/amd64")
    try:
        images: dict[str, StoredImage] = {}
        for name in ("a", "b", "c"):
            built = build_image([make_layer([file("blob", os.urandom(3 * 1024 * 1024))])], Cmd=["sh"])
            layout = write_oci_layout(tmp_path / f"layout-{name}", [(f"example.com/gc/{name}:v1", built)])
            (images[name],) = await store.load(layout)
        root = tmp_path / "root"
        await store.prepare_rootfs(images["a"], root)  # a is used now: b is the least recently used
        await store.release_rootfs(root)
        before = _usage_percent(store)
        assert 50 <= before <= 65, before

        assert await store.garbage_collect({"example.com/gc/c:v1"}, high_percent=before + 1, low_percent=10) == []

        removed = await store.garbage_collect({"example.com/gc/c:v1"}, high_percent=50, low_percent=45)
        assert removed == [images["b"].id], "one image brings usage below low: the least recently used unused one"
        assert _usage_percent(store) < 45
        assert {i.id for i in store.list()} == {images["a"].id, images["c"].id}

        assert await store.garbage_collect({"example.com/gc/c:v1"}, high_percent=50, low_percent=45) == []

        removed = await store.garbage_collect({images["c"].id}, high_percent=10, low_percent=1)
        assert removed == [images["a"].id], "an image in use is never removed, even below the goal"
        assert [i.id for i in store.list()] == [images["c"].id]

        root = tmp_path / "root-c"
        await store.prepare_rootfs(images["c"], root)  # a prepared container root counts as in use
        assert await store.garbage_collect(set(), high_percent=1, low_percent=0) == []
        await store.release_rootfs(root)
        assert await store.garbage_collect(set(), high_percent=1, low_percent=0) == [images["c"].id]
        assert list(store.layers_dir.iterdir()) == [] and list(store.blobs_dir.iterdir()) == []
        with pytest.raises(ValueError, match="need 0 <= low"):
            await store.garbage_collect(set(), high_percent=50, low_percent=60)
    finally:
        await _release_everything(store)


# ---------------------------------------------------------------- the CLI


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podlife.images_cli", "images", *args, "--data-dir", str(data_dir),
                           "--node", "testnode"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)


def test_cli_load_ls_pull_rm(tmp_path: Path, registry: RegistryProcess, pushed: tuple[BuiltImage, str]) -> None:
    _require_root()
    image, _ = pushed
    data = tmp_path / "data"
    layout = write_oci_layout(tmp_path / "layout", [("example.com/cli/app:v7", busybox_image(marker="cli"))])

    loaded = _cli(data, "load", str(layout))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == "Loaded image: example.com/cli/app:v7\n"
    assert (data / "nodes/testnode/images/index.json").is_file()

    pulled = _cli(data, "pull", f"{registry.host}/{REPO}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == f"Image is up to date for {image.config_digest}\n"

    listing = _cli(data, "ls")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert (f"{registry.host}/{REPO}", "v1", image.config_digest[7:20]) in rows
    assert any(row[:2] == ("example.com/cli/app", "v7") for row in rows)
    assert set(_cli(data, "ls", "-q").stdout.split()) == {image.config_digest, busybox_image(marker="cli").config_digest}

    removed = _cli(data, "rm", "example.com/cli/app:v7", "nosuch:v1")
    assert removed.returncode == 1
    assert removed.stdout == "Deleted: example.com/cli/app:v7\n"
    assert removed.stderr == 'podlife images: no such image "nosuch:v1"\n'
    assert "example.com/cli/app" not in _cli(data, "ls").stdout

    failed = _cli(data, "pull", f"{registry.host}/{REPO}:nosuchtag")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f'podlife images: failed to pull and unpack image "{registry.host}/{REPO}:nosuchtag": ')


# ---------------------------------------------------------------- a real container


def _runc() -> str:
    found = shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/sbin")
    if found is None:
        missing("runc is not installed (Debian package runc; `make system-deps`)")
    return found


async def test_runc_runs_a_container_on_a_pulled_root(store: ImageStore, tmp_path: Path, registry: RegistryProcess,
                                                      pushed: tuple[BuiltImage, str]) -> None:
    runc = _runc()
    image = await store.pull(f"{registry.host}/{REPO}:v1")
    bundle = tmp_path / "bundle"
    root = bundle / "rootfs"
    await store.prepare_rootfs(image, root)
    uid, gid, groups = resolve_user(image.user, root)
    assert (uid, gid, groups) == (1000, 1000, (2000,))
    script = ('echo "$GREETING from $(id -u):$(id -g) in $(pwd)"; test -e /etc/doomed || echo doomed-is-gone; '
              "ls /data/old; cat /app/marker")
    spec = BundleSpec(
        args=container_argv(image, [], [script]),  # type: ignore[arg-type]
        env=dict(image.env), cwd=image.working_dir, uid=uid, gid=gid, additional_gids=groups,
        hostname="pulled", namespaces=[Namespace(n) for n in ("mount", "pid", "ipc", "uts", "network")],
        cgroups_path=f"/podlife-image-test-{uuid.uuid4().hex[:12]}",
    )
    write_config(bundle, build_config(spec))
    state = tmp_path / "runc-state"
    container = f"image-test-{uuid.uuid4().hex[:12]}"
    try:
        proc = await asyncio.create_subprocess_exec(
            runc, "--root", str(state), "run", "--bundle", str(bundle), container,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        subprocess.run([runc, "--root", str(state), "delete", "--force", container], capture_output=True, check=False)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["hello from 1000:1000 in /app", "doomed-is-gone", "new.txt", "v1"]
    await store.release_rootfs(root)
    assert str(root) not in mount_points()


def test_resolve_user_reads_the_image_not_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "host-passwd").write_text("app:x:4242:4242::/:/bin/sh\n")
    (root / "etc/passwd").symlink_to("/../../host-passwd")  # resolved inside the root: not the host's file
    (root / "etc/group").write_text("wheel:x:10:app\n")
    with pytest.raises(ValueError, match="unable to find user app: no matching entries in passwd file"):
        resolve_user("app", root)
    (root / "etc/passwd").unlink()
    (root / "etc/passwd").write_text("app:x:1000:1001::/:/bin/sh\n")
    assert resolve_user("", root) == (0, 0, ())
    assert resolve_user("app", root) == (1000, 1001, (10,))
    assert resolve_user("1000", root) == (1000, 1001, (10,))
    assert resolve_user("5000", root) == (5000, 0, ())
    assert resolve_user("app:10", root) == (1000, 10, ())
    assert resolve_user("app:wheel", root) == (1000, 10, ())
    with pytest.raises(ValueError, match="unable to find group nogroup"):
        resolve_user("app:nogroup", root)


async def test_zstd_layers_are_unpacked(store: ImageStore, tmp_path: Path) -> None:
    zstd = shutil.which("zstd")
    if zstd is None:
        pytest.skip("zstd is not installed (optional: Debian package zstd)")
    plain = make_layer([*busybox_rootfs_entries(), file("etc/compressed-with", "zstd\n")], compress=False)
    blob = subprocess.run([zstd, "-q", "-c"], input=plain.blob, capture_output=True, check=True).stdout
    layer = Layer(blob, plain.diff_id, "application/vnd.oci.image.layer.v1.tar+zstd")
    image = build_image([layer], Cmd=["sh"])
    (loaded,) = await store.load(write_oci_layout(tmp_path / "layout", [("example.com/zstd:v1", image)]))
    assert (store.layer_path(plain.diff_id) / "etc/compressed-with").read_text() == "zstd\n"
    assert loaded.layers == (plain.diff_id,)
