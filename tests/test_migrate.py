"""``podlife migrate``: a cluster's objects copied from one store to another.

Two levels:

* the copy itself (:func:`podlife.store.migrate.migrate`) over two real MemoryStores:
  one revision read, create-only writes, a non-empty target refused, ``overwrite``,
  Events skipped, a dry run that writes nothing;
* the whole way as a user goes it: ``podlife up`` on SQLite, objects made with kubectl
  (namespace, ConfigMap, Secret, Deployment, CRD and a custom object), the cluster
  stopped, ``podlife migrate --from sqlite://DIR --to etcd://...`` (a real etcd), then
  ``podlife server --store etcd://... --cluster-token-file F``: every object is there with
  its uid and content, the old admin kubeconfig works (same CA) once its address is
  changed, updates, watches and optimistic concurrency work on the target's revisions,
  and a second migration into the now non-empty target is refused (unless ``--overwrite``);
  then back from etcd into a new SQLite data directory, where the old kubeconfig works too; from
  etcd to etcd (another prefix), where ``podlife up``'s controllers carry on with the copied
  Deployment; and from SQLite to SQLite.

The timing of a big migration is a benchmark: ``benchmarks/migrate.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from podlife.store import MemoryStore
from podlife.store.migrate import (
    EVENT_PREFIXES,
    MigrateOptions,
    TargetNotEmpty,
    migrate,
    resource_of,
    snapshot,
)
from tests.cluster_harness import PodlifeProcess, running_podlife, wait_for

# ---- the copy over two MemoryStores ---------------------------------------------------


def _doc(name: str, uid: str) -> bytes:
    return json.dumps({"metadata": {"name": name, "uid": uid, "resourceVersion": ""}}).encode()


async def _filled() -> MemoryStore:
    store = MemoryStore()
    await store.start()
    for i in range(250):
        await store.create(f"/registry/core/configmaps/default/cm-{i:03}", _doc(f"cm-{i:03}", f"uid-{i}"))
    await store.create("/registry/apps/deployments/default/web", _doc("web", "uid-web"))
    await store.create("/registry/example.com/widgets/default/w", _doc("w", "uid-w"))
    await store.create("/registry/core/events/default/web.1", _doc("web.1", "uid-ev"))
    await store.create("/podlife/bootstrap/pki", b"not copied unless asked")
    # history: a later change and a deletion, so the source's revision is not its key count
    kv = await store.get("/registry/core/configmaps/default/cm-000")
    assert kv is not None
    await store.update(kv.key, _doc("cm-000", "uid-0-changed"), kv.mod_revision)
    await store.create("/registry/core/configmaps/default/gone", _doc("gone", "uid-gone"))
    await store.delete("/registry/core/configmaps/default/gone")
    return store


def test_resource_names() -> None:
    assert resource_of("/registry/core/pods/default/p") == "pods"
    assert resource_of("/registry/apps/deployments/default/web") == "deployments.apps"
    assert resource_of("/registry/core/namespaces/default") == "namespaces"
    assert resource_of("/podlife/bootstrap/pki") == "/podlife/bootstrap"


def test_copy_between_memory_stores() -> None:
    async def run() -> None:
        source, target = await _filled(), MemoryStore()
        await target.start()
        try:
            report = await migrate(source, target)
            assert report.source_revision == source.revision
            assert report.counts == {"configmaps": 250, "deployments.apps": 1, "widgets.example.com": 1, "events": 1}
            assert report.total == 253 and not report.existed
            _, copied = await snapshot(target, ["/"])
            _, original = await snapshot(source, ["/registry/"])
            assert [(kv.key, kv.value) for kv in copied] == [(kv.key, kv.value) for kv in original]
            # the values are the source's; the revisions are the target's own, every one past the source's
            # (the target's revision was raised first), so no resourceVersion of the old store names one of them
            assert all(source.revision < kv.create_revision == kv.mod_revision <= target.revision for kv in copied)
            assert report.target_revision_after == target.revision >= source.revision + 253
            assert await target.get("/podlife/migrate/revision-bump") is None
            revision = target.revision

            # a second copy into the (now non-empty) target is refused and writes nothing
            with pytest.raises(TargetNotEmpty, match="not empty: it holds 253 keys"):
                await migrate(source, target)
            assert target.revision == revision

            # overwrite: what the target held is deleted first, so it ends up a copy of the source again
            await target.create("/registry/core/configmaps/default/only-in-target", _doc("x", "uid-x"))
            kv = await source.get("/registry/core/configmaps/default/cm-001")
            assert kv is not None
            await source.update(kv.key, _doc("cm-001", "uid-1-newer"), kv.mod_revision)
            again = await migrate(source, target, MigrateOptions(overwrite=True))
            assert again.deleted == 254 and again.total == 253
            assert await target.get("/registry/core/configmaps/default/only-in-target") is None
            newer = await target.get("/registry/core/configmaps/default/cm-001")
            assert newer is not None and b"uid-1-newer" in newer.value
        finally:
            await source.close()
            await target.close()

    asyncio.run(run())


def test_events_skipped_and_dry_run() -> None:
    async def run() -> None:
        source, target = await _filled(), MemoryStore()
        await target.start()
        try:
            dry = await migrate(source, target, MigrateOptions(dry_run=True, skip_prefixes=EVENT_PREFIXES))
            assert dry.total == 252 and dry.skipped == {"events": 1}
            assert target.revision == 0 and not (await snapshot(target, ["/"]))[1]
            report = await migrate(source, target, MigrateOptions(skip_prefixes=EVENT_PREFIXES, bump_revision=False))
            assert report.total == 252 and target.revision == 252  # not raised: one revision per create
            assert await target.get("/registry/core/events/default/web.1") is None
            # a dry run into a non-empty target says so rather than failing
            assert (await migrate(source, target, MigrateOptions(dry_run=True))).target_keys == 252
        finally:
            await source.close()
            await target.close()

    asyncio.run(run())


def test_snapshot_is_one_revision_across_pages() -> None:
    async def run() -> None:
        store = await _filled()
        try:
            revision, kvs = await snapshot(store, ["/registry/"], page=7)
            assert revision == store.revision and len(kvs) == 253
            assert [kv.key for kv in kvs] == sorted(kv.key for kv in kvs)
        finally:
            await store.close()

    asyncio.run(run())


# ---- the command, end to end --------------------------------------------------------

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"""

WIDGET = """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {size: 3}
"""

#: the objects the test makes and then looks for on the target: (kubectl resource, namespace or "")
OBJECTS = [("namespace/shop", ""), ("configmap/settings", "shop"), ("secret/creds", "shop"),
           ("deployment/web", "shop"), ("crd/widgets.example.com", ""), ("widget/w1", "shop")]


def podlife_migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "podlife.cli", "migrate", *args], capture_output=True, text=True,
                          timeout=120)


def _pointed_at(kubeconfig: Path, server: str, path: Path) -> Path:
    """``kubeconfig`` (its CA, its admin's client certificate) with only the server address changed."""
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


def _kubectl(kubectl: str, kubeconfig: Path, *args: str, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                            timeout=60, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


def _make_objects(cluster: PodlifeProcess) -> dict[str, dict]:
    cluster.kubectl("create", "namespace", "shop")
    cluster.kubectl("-n", "shop", "create", "configmap", "settings", "--from-literal=color=blue")
    cluster.kubectl("-n", "shop", "create", "secret", "generic", "creds", "--from-literal=password=s3cret")
    cluster.kubectl("-n", "shop", "create", "deployment", "web", "--image=busybox", "--replicas=2")
    cluster.kubectl("apply", "-f", "-", input=CRD)
    wait_for(lambda: cluster.kubectl("get", "widgets", "-A", check=False).returncode == 0, what="the CRD served")
    cluster.kubectl("apply", "-f", "-", input=WIDGET)
    wait_for(lambda: cluster.kubectl_json("-n", "shop", "get", "deployment", "web").get("status", {})
             .get("readyReplicas") == 2, 60, what="the deployment's pods ready on the simulated node")
    return {name: cluster.kubectl_json(*(("-n", ns) if ns else ()), "get", name) for name, ns in OBJECTS}


def _same_object(before: dict, after: dict) -> None:
    """The same object: uid, creation time, labels, content; only the resourceVersion is the target's."""
    strip = ("resourceVersion", "managedFields")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert {k: v for k, v in after["metadata"].items() if k not in strip} == \
        {k: v for k, v in before["metadata"].items() if k not in strip}
    for part in ("spec", "data", "stringData", "type"):
        assert after.get(part) == before.get(part), part


@dataclass
class Scenario:
    """The cluster the end-to-end test moves around: where it started and what it held."""

    tmp: Path
    etcd_url: str
    kubectl: str
    token: Path
    source_dir: Path
    before: dict[str, dict] = field(default_factory=dict)
    pods_before: dict[str, str] = field(default_factory=dict)

    def kubectl_via(self, server: str, name: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """kubectl with the source cluster's admin kubeconfig, pointed at ``server``."""
        kubeconfig = _pointed_at(self.source_dir / "kubeconfig", server, self.tmp / f"{name}.kubeconfig")
        return _kubectl(self.kubectl, kubeconfig, *args, **kwargs)

    def json_via(self, server: str, name: str, *args: str) -> Any:
        return json.loads(self.kubectl_via(server, name, *args, "-o", "json").stdout)


def test_migrate_sqlite_cluster_to_etcd(etcd, tmp_path: Path) -> None:
    token = tmp_path / "cluster-token"
    token.write_text("migrated-cluster-secret\n")
    source_dir = tmp_path / "sqlite-cluster"
    with running_podlife(source_dir, "--nodes", "0", "--sim-nodes", "1") as old:
        sc = Scenario(tmp_path, etcd.url, old.kubectl_bin, token, source_dir, _make_objects(old))
        sc.pods_before = {p["metadata"]["name"]: p["metadata"]["uid"]
                          for p in old.kubectl_json("-n", "shop", "get", "pods")["items"]}
        # the source is in use while its server runs: refused, nothing written
        busy = podlife_migrate("--from", f"sqlite://{source_dir}", "--to", etcd.url)
        assert busy.returncode == 1 and "is in use by another process" in busy.stderr, busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
    source_revision = _migrate_into_etcd(sc)
    with running_podlife(tmp_path / "etcd-server", "--store", etcd.url, "--cluster-token-file", str(token),
                         command="server") as new:
        _served_from_etcd(sc, new, source_revision)
    _back_on_sqlite(sc, tmp_path / "back-on-sqlite")
    _etcd_to_etcd(sc)
    # SQLite to SQLite: the objects and the PKI's files
    copy_dir, back_dir = tmp_path / "copy-on-sqlite", tmp_path / "back-on-sqlite"
    copied_dir = podlife_migrate("--from", str(back_dir), "--to", str(copy_dir))
    assert copied_dir.returncode == 0, copied_dir.stderr
    assert (copy_dir / "pki" / "ca.key").read_bytes() == (source_dir / "pki" / "ca.key").read_bytes()
    assert _rows(copy_dir / "store.sqlite") == _rows(back_dir / "store.sqlite")
    assert "/registry/core/configmaps/shop/fresh" in _rows(copy_dir / "store.sqlite")


def _migrate_into_etcd(sc: Scenario) -> int:
    """A dry run, the migration, a refused second one, one with --overwrite; the source's revision."""
    source, token = f"sqlite://{sc.source_dir}", str(sc.token)
    dry = podlife_migrate("--from", source, "--to", sc.etcd_url, "--dry-run", "--cluster-token-file", token)
    assert dry.returncode == 0, dry.stderr
    assert "would copy" in dry.stdout and "nothing was written" in dry.stdout
    moved = podlife_migrate("--from", source, "--to", sc.etcd_url, "--cluster-token-file", token)
    assert moved.returncode == 0, moved.stderr
    table = {line.split()[0]: line.split()[-1] for line in moved.stdout.splitlines()[1:] if len(line.split()) == 2}
    for resource in ("namespaces", "configmaps", "secrets", "deployments.apps", "replicasets.apps", "pods",
                     "customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com"):
        assert int(table[resource]) >= 1, (resource, moved.stdout)
    assert int(table["TOTAL"]) == sum(int(v) for k, v in table.items() if k != "TOTAL")
    assert "pki: " in moved.stdout and "encrypted with the cluster token of" in moved.stdout
    assert dry.stdout.splitlines()[:-2] == moved.stdout.splitlines()[:-2]  # the dry run's counts were the real ones

    # a second migration into the now non-empty target is refused
    again = podlife_migrate("--from", source, "--to", sc.etcd_url, "--cluster-token-file", token)
    assert again.returncode == 1 and "the target is not empty" in again.stderr, again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    # unless --overwrite: the target's keys are deleted first, so it is a copy again (here without the Events)
    replaced = podlife_migrate("--from", source, "--to", sc.etcd_url, "--cluster-token-file", token,
                               "--overwrite", "--skip-events")
    assert replaced.returncode == 0, replaced.stderr
    assert "events (skipped)" in replaced.stdout and "after deleting the target's" in replaced.stdout
    found = re.search(r"\(revision (\d+)\) to", moved.stdout)
    assert found is not None, moved.stdout
    return int(found.group(1))


def _served_from_etcd(sc: Scenario, new: PodlifeProcess, source_revision: int) -> None:
    """``podlife server`` on the migrated etcd: the same objects, CA and admin; updates, watches, conflicts."""
    def kubectl(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return sc.kubectl_via(new.server, "old-admin", *args, **kwargs)

    def get(*args: str) -> Any:
        return sc.json_via(new.server, "old-admin", *args)

    # the old admin kubeconfig works against the new server: same CA, same admin
    assert (new.data_dir / "pki" / "ca.crt").read_bytes() == (sc.source_dir / "pki" / "ca.crt").read_bytes()
    for name, ns in OBJECTS:
        _same_object(sc.before[name], get(*(("-n", ns) if ns else ()), "get", name))
    assert get("-n", "shop", "get", "secret", "creds")["data"]["password"] == "czNjcmV0"
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in get("-n", "shop", "get", "pods")["items"]}
    assert pods == sc.pods_before

    # every copied object's resourceVersion is past the source's revision, so a watch resumed from a
    # resourceVersion of the old store is told it is too old (and the client lists again)
    old_rv = sc.before["configmap/settings"]["metadata"]["resourceVersion"]
    copied = get("-n", "shop", "get", "configmap", "settings")
    assert int(copied["metadata"]["resourceVersion"]) > source_revision >= int(old_rv)
    events = new.watch_events(f"/api/v1/namespaces/shop/configmaps?watch=1&resourceVersion={old_rv}&timeoutSeconds=1")
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410, events

    # a watch from a list's resourceVersion (the target's) replays the update made after the list
    status, listed = new.http("GET", "/api/v1/namespaces/shop/configmaps")
    assert status == 200, listed
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", '{"data":{"color":"red"}}')
    events = new.watch_events("/api/v1/namespaces/shop/configmaps?watch=1&timeoutSeconds=1&resourceVersion="
                              + listed["metadata"]["resourceVersion"])
    assert [(e["type"], e["object"]["metadata"]["name"], e["object"]["data"]["color"]) for e in events] == \
        [("MODIFIED", "settings", "red")], events

    # optimistic concurrency on the target's revisions: a replace based on an older version conflicts
    stale = get("-n", "shop", "get", "configmap", "settings")
    kubectl("-n", "shop", "patch", "configmap", "settings", "-p", '{"data":{"color":"green"}}')
    stale["data"]["color"] = "stale"
    refused = kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert refused.returncode != 0 and "the object has been modified" in refused.stderr, refused.stderr
    # a custom object updates too (its CRD was served from the copied definition)
    kubectl("-n", "shop", "patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":5}}')
    assert kubectl("-n", "shop", "get", "widget", "w1", "-o", "jsonpath={.spec.size}").stdout == "5"
    # new objects get revisions after the copied ones
    created = json.loads(kubectl("-n", "shop", "create", "configmap", "fresh", "-o", "json").stdout)
    assert int(created["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    sc.before["configmap/fresh"] = created


def _back_on_sqlite(sc: Scenario, back_dir: Path) -> None:
    """From etcd into a new data directory (the PKI decrypted from the store into DIR/pki); a wrong token first."""
    wrong_token = sc.tmp / "wrong-token"
    wrong_token.write_text("not-the-cluster-secret\n")
    wrong = podlife_migrate("--from", sc.etcd_url, "--to", f"sqlite://{sc.tmp / 'wrong'}", "--cluster-token-file",
                            str(wrong_token))
    assert wrong.returncode == 1 and "encrypted with another cluster token" in wrong.stderr, wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert _rows(sc.tmp / "wrong" / "store.sqlite") == {}  # it failed before any object was copied

    back = podlife_migrate("--from", sc.etcd_url, "--to", f"sqlite://{back_dir}", "--cluster-token-file",
                           str(sc.token))
    assert back.returncode == 0, back.stderr
    assert f"pki: /podlife/bootstrap/pki -> {back_dir / 'pki'}" in back.stdout, back.stdout
    with running_podlife(back_dir, "--nodes", "0") as on_sqlite:
        busy = podlife_migrate("--from", sc.etcd_url, "--to", f"sqlite://{back_dir}", "--overwrite")
        assert busy.returncode == 1 and "the target store" in busy.stderr and "is in use" in busy.stderr, busy.stderr
        fresh = sc.json_via(on_sqlite.server, "back", "-n", "shop", "get", "configmap", "fresh")
        assert fresh["metadata"]["uid"] == sc.before["configmap/fresh"]["metadata"]["uid"]
        assert sc.kubectl_via(on_sqlite.server, "back", "-n", "shop", "get", "configmap", "settings", "-o",
                              "jsonpath={.data.color}").stdout == "green"


def _etcd_to_etcd(sc: Scenario) -> None:
    """Into another prefix: the PKI record travels as it is; ``podlife up`` there carries on with the objects."""
    other = f"{sc.etcd_url}/other-cluster"
    sideways = podlife_migrate("--from", sc.etcd_url, "--to", other)
    assert sideways.returncode == 0, sideways.stderr
    assert "pki: copied with the store's keys" in sideways.stdout
    with running_podlife(sc.tmp / "other-up", "--store", other, "--cluster-token-file", str(sc.token),
                         "--nodes", "0", "--sim-nodes", "1") as third:
        widget = sc.json_via(third.server, "third", "-n", "shop", "get", "widget", "w1")
        assert widget["metadata"]["uid"] == sc.before["widget/w1"]["metadata"]["uid"]
        # the controllers scale the copied deployment, keeping its old pods
        sc.kubectl_via(third.server, "third", "-n", "shop", "scale", "deployment", "web", "--replicas=3")
        wait_for(lambda: sc.json_via(third.server, "third", "-n", "shop", "get", "deployment", "web")
                 .get("status", {}).get("readyReplicas") == 3, 60, what="the migrated deployment scaled on etcd")
        pods = {p["metadata"]["uid"] for p in sc.json_via(third.server, "third", "-n", "shop", "get", "pods")["items"]}
        assert set(sc.pods_before.values()) <= pods


def _rows(db: Path) -> dict[str, bytes]:
    """A SQLite store's objects, read from its file (the server on it has stopped)."""
    with closing(sqlite3.connect(db)) as conn:
        return {k: bytes(v) for k, v in conn.execute("SELECT key, value FROM kv WHERE key LIKE '/registry/%'")}


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    cases = [
        (["--from", f"sqlite://{tmp_path / 'nowhere'}", "--to", "etcd://127.0.0.1:1"], "no such data directory"),
        (["--from", str(tmp_path), "--to", "etcd://127.0.0.1:1"], "no store.sqlite there"),
        (["--from", "memory://", "--to", "etcd://127.0.0.1:1"], "in-memory store"),
        (["--from", "postgres://db", "--to", "etcd://127.0.0.1:1"], "a store is sqlite://DIR"),
        (["--from", "etcd://", "--to", str(tmp_path / "t")], "no etcd endpoint"),
        (["--from", "etcd://host:port", "--to", str(tmp_path / "t")], "'etcd://host:port': "),
        (["--from", str(tmp_path), "--to", str(tmp_path)], "--from and --to name the same store"),
    ]
    for args, message in cases:
        result = podlife_migrate(*args)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("podlife migrate: ")


def test_unreachable_etcd_is_a_one_line_error(tmp_path: Path) -> None:
    source = tmp_path / "cluster"
    with running_podlife(source, "--nodes", "0"):
        pass  # a stopped cluster's data directory
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = podlife_migrate("--from", f"sqlite://{source}", "--to", f"etcd://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith(f"podlife migrate: etcd at 127.0.0.1:{port}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # a dry run into a data directory not made yet reads the source and creates nothing
    dry = podlife_migrate("--from", str(source), "--to", str(tmp_path / "not-yet"), "--dry-run")
    assert dry.returncode == 0 and "would copy" in dry.stdout, dry.stderr
    assert not (tmp_path / "not-yet").exists()
