"""How long ``podlife migrate`` takes for a big cluster: SQLite into a fresh etcd, and back (docs/migrate.md).

    .venv/bin/python benchmarks/migrate.py [--pods 10000]

A ``podlife up`` on SQLite with one simulated node runs one pod and stops; its stored pod is then
copied ``--pods`` times straight into the SQLite file (each copy created and updated once, so the
store's revision is about twice the object count, as in a cluster with history). Then, on a
fresh single-member etcd on loopback (Debian's ``etcd-server``, started and removed here):

* ``migrate`` SQLite -> etcd, with the revision bump (the default) and with ``--no-bump-revision``;
* ``migrate`` etcd -> a new SQLite data directory, for each;
* ``podlife server`` on the migrated etcd lists every pod (the check that the copy is served).

Prints the wall time of each step and writes ``benchmarks/results/migrate-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import print_result, write_result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from podlife.store import SQLiteStore  # noqa: E402
from tests.cluster_harness import running_podlife  # noqa: E402
from tests.etcd_harness import running_etcd  # noqa: E402


async def fill_with_pods(db: Path, count: int) -> None:
    """Copies of the stored pod ``default/p0`` as ``p1``..., each created and then updated once."""
    store = SQLiteStore(db)
    await store.start()
    try:
        template = await store.get("/registry/core/pods/default/p0")
        assert template is not None, "the template pod was not stored"
        pod = json.loads(template.value)

        async def one(i: int) -> None:
            obj = copy.deepcopy(pod)
            obj["metadata"].update(name=f"p{i}", uid=str(uuid.uuid4()))
            key = f"/registry/core/pods/default/p{i}"
            created = await store.create(key, json.dumps(obj).encode())
            assert created is not None
            obj["metadata"].setdefault("labels", {})["generation"] = "2"  # history: the revision is not the count
            await store.update(key, json.dumps(obj).encode(), created.mod_revision)

        for start in range(1, count, 500):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 500))))
    finally:
        await store.close()


def migrate(*args: str) -> float:
    """Wall seconds of one ``podlife migrate`` (which must succeed)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "podlife.cli", "migrate", *args], capture_output=True,
                            text=True, timeout=900, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"podlife migrate {' '.join(args)} failed: {result.stderr.strip()}")
    return time.monotonic() - started


def run(pods: int, root: Path) -> dict[str, float | int]:
    source = root / "source"
    with running_podlife(source, "--nodes", "0", "--sim-nodes", "1") as cluster:
        cluster.kubectl("run", "p0", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
        cluster.kubectl("wait", "--for=condition=Ready", "pod/p0", "--timeout=60s")
    asyncio.run(fill_with_pods(source / "store.sqlite", pods))
    result: dict[str, float | int] = {"pods": pods}
    with running_etcd(root / "etcd", size=1) as etcd:
        for name, flags in (("bump", ()), ("no_bump", ("--no-bump-revision",))):
            target = f"{etcd.url}/{name}"
            result[f"sqlite_to_etcd_{name}_seconds"] = migrate("--from", str(source), "--to", target, *flags)
            result[f"etcd_to_sqlite_{name}_seconds"] = migrate("--from", target, "--to", str(root / f"back-{name}"))
        with running_podlife(root / "server", "--store", f"{etcd.url}/bump", command="server") as server:
            listed = len(server.kubectl("get", "pods", "-A", "--no-headers").stdout.splitlines())
    if listed != pods:
        raise SystemExit(f"the server on the migrated etcd lists {listed} pods, not {pods}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000, help="pods in the source store (default: 10000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podlife-bench-migrate-") as tmp:
        result = run(args.pods, Path(tmp))
    print_result(f"podlife migrate, {args.pods} pods", result)
    print(f"  written to {write_result('migrate', result, arguments=sys.argv[1:])}")


if __name__ == "__main__":
    main()
