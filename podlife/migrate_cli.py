"""``podlife migrate --from STORE --to STORE``: copy a cluster's objects between stores.

    podlife migrate --from sqlite://DIR --to etcd://HOST:PORT[,HOST:PORT...][/PREFIX]
                    [--cluster-token-file F] [--skip-events] [--skip-pki] [--overwrite]
                    [--no-bump-revision] [--dry-run] [--etcd-cafile F --etcd-certfile F --etcd-keyfile F]

Design
------
A store is named as ``podlife up --store`` names it, except that ``sqlite://DIR`` (or a
bare ``DIR``) may be a whole data directory of ``podlife up``: its ``store.sqlite`` is the
store and its ``pki/`` the cluster's certificate authority and credentials. The copying
itself is :func:`podlife.store.migrate.migrate` (one revision of the source, the target's
revision raised past the source's, create-only writes, a byte-for-byte check afterwards);
this module picks the stores, checks that nothing serves them, moves the PKI and prints
what was done. An etcd target's revision is raised on a gRPC channel of its own with the
target's mirror closed (:func:`~podlife.store.migrate.bump_etcd_revision`): following
those writes would halve the rate.

The source must not be in use: a SQLite store that another process has open (a
``podlife up`` or ``podlife server`` running on it) is refused
(:func:`~podlife.store.migrate.sqlite_in_use`), and so is a SQLite target in use. An etcd
source may be live -- what is copied is its state at the revision the copy began -- but
writes after that are not copied; stop its servers first.

The PKI: a cluster on SQLite keeps it in ``DIR/pki``, a cluster on etcd in the store
itself (``/podlife/bootstrap/pki``, encrypted with the cluster token:
:mod:`podlife.api.shared_pki`). Unless ``--skip-pki``, the source's PKI goes where the
target keeps it: ``DIR/pki`` into the etcd store encrypted with the token of
``--cluster-token-file`` (else ``$PODLIFE_CLUSTER_TOKEN``, else none, as ``podlife
server`` reads it), so that ``podlife server --store etcd://... --cluster-token-file F``
afterwards serves with the same CA and the old kubeconfig works once its ``server:``
address is changed; the store's record into ``DIR/pki`` for a SQLite target (decrypted
with that token); verbatim between two etcd stores; the files between two directories.
The PKI moves first, so a wrong cluster token fails before any object is copied.

Writes: only to the target (its keys under ``/registry/``, its PKI, and a scratch key while
its revision is raised, deleted afterwards). The source is read.
Errors (a bad URL, a missing source, an unreachable etcd, a non-empty target, a store in
use) are one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import open_store
from .store.base import Store, StoreError
from .store.migrate import (
    BOOTSTRAP_PREFIX,
    EVENT_PREFIXES,
    Bumper,
    REGISTRY_PREFIX,
    MigrateOptions,
    MigrateReport,
    TargetNotEmpty,
    bump_etcd_revision,
    migrate,
    snapshot,
    sqlite_in_use,
)
from .store.memory import MemoryStore
from .store.sqlite import SQLiteStore

#: the store file of a ``podlife up`` data directory (``cluster.py``'s ``_open_store``)
STORE_FILE = "store.sqlite"
#: the hosts the temporary copy of a PKI is made for when it is published (only its own server certificate)
_PKI_HOSTS = ["127.0.0.1", "localhost"]


class CommandError(Exception):
    """A one-line error for the user (exit code 1)."""


@dataclass(frozen=True)
class Location:
    """One side of the migration: an etcd URL, or a SQLite file with the data directory's PKI beside it."""

    url: str
    etcd: bool
    db: Path | None = None
    pki_dir: Path | None = None

    def describe(self) -> str:
        return self.url if self.etcd else f"sqlite://{self.db}"


def parse_location(url: str, *, must_exist: bool) -> Location:
    """``etcd://...``, ``sqlite://DIR`` or ``sqlite://FILE`` (or a bare path); a missing source is an error."""
    if url.startswith("etcd://"):
        from .store.etcd import EtcdEndpoints

        try:
            EtcdEndpoints.parse(url)
        except ValueError as exc:  # its own messages name the URL; urllib's (a bad port) do not
            raise CommandError(str(exc) if url in str(exc) else f"{url!r}: {exc}") from None
        return Location(url, etcd=True)
    if url.startswith("memory://"):
        raise CommandError(f"{url}: an in-memory store lives only inside its process; nothing to migrate")
    if "://" in url and not url.startswith("sqlite://"):
        raise CommandError(f"{url!r}: a store is sqlite://DIR (a podlife data directory or its {STORE_FILE}) "
                           "or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")
    path = Path(url[len("sqlite://"):] if url.startswith("sqlite://") else url)
    if not str(path):
        raise CommandError(f"{url!r}: no path (sqlite://DIR)")
    if path.is_dir() or (not path.exists() and not must_exist and path.suffix != ".sqlite"):
        return Location(url, etcd=False, db=path / STORE_FILE, pki_dir=path / "pki")
    if path.is_file():
        return Location(url, etcd=False, db=path, pki_dir=path.parent / "pki")
    if must_exist:
        raise CommandError(f"{url}: no such data directory or SQLite file")
    return Location(url, etcd=False, db=path, pki_dir=path.parent / "pki")


def _check_sqlite(where: Location, role: str) -> None:
    """A source file must exist; neither side may be open in another process."""
    assert where.db is not None
    if not where.db.exists():
        if role == "source":
            raise CommandError(f"{where.url}: no {STORE_FILE} there (is it a podlife data directory?)")
        return
    try:
        in_use = sqlite_in_use(where.db)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    if in_use:
        raise CommandError(f"the {role} store {where.db} is in use by another process (a podlife server "
                           f"running on {where.db.parent}?); stop it first")


def _open(where: Location, args: argparse.Namespace) -> Store:
    """The store of one side (not started); a dry run stands an empty one in for a SQLite file not made yet."""
    if where.etcd:
        tls = {"ca_file": args.etcd_cafile, "cert_file": args.etcd_certfile, "key_file": args.etcd_keyfile}
        return open_store(where.url, compaction_interval=0, **{k: v for k, v in tls.items() if v})
    assert where.db is not None
    if args.dry_run and not where.db.exists():
        return MemoryStore()  # opening SQLiteStore would create the file: a dry run writes nothing
    return SQLiteStore(where.db)


def _etcd_bumper(where: Location, args: argparse.Namespace) -> Bumper | None:
    """The fast way to raise an etcd target's revision (None: the store's own writes, for SQLite)."""
    if not where.etcd:
        return None
    from .store.etcd import EtcdTLS

    files = (args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    tls = EtcdTLS(*files) if any(files) else None

    async def bump(revision: int) -> None:
        await bump_etcd_revision(where.url, revision, tls=tls)

    return bump


def cluster_token(flag: Path | None) -> tuple[str, str]:
    """The cluster token, as ``podlife server`` reads it, and where it came from."""
    if flag is not None:
        try:
            return flag.read_text().strip(), f"the cluster token of {flag}"
        except OSError as exc:
            raise CommandError(f"--cluster-token-file: {exc.strerror or exc}: {flag}") from None
    if os.environ.get("PODLIFE_CLUSTER_TOKEN"):
        return os.environ["PODLIFE_CLUSTER_TOKEN"], "the cluster token of $PODLIFE_CLUSTER_TOKEN"
    return "", "no cluster token"


# ---- the PKI ----------------------------------------------------------------------


def _has_pki(pki_dir: Path | None) -> bool:
    return pki_dir is not None and (pki_dir / "ca.crt").exists() and (pki_dir / "ca.key").exists()


async def _pki_precheck(source: Location, target: Location, target_store: Store, overwrite: bool) -> str | None:
    """What the PKI step will do (None: nothing); refuses a target that has a PKI already unless ``overwrite``."""
    from .api.shared_pki import BOOTSTRAP_KEY

    if source.etcd and target.etcd:
        return "copied with the store's keys (encrypted with the source's cluster token)"
    if not source.etcd and not _has_pki(source.pki_dir):
        return None
    if target.etcd:
        if await target_store.get(BOOTSTRAP_KEY) is not None and not overwrite:
            raise CommandError(f"the target is not empty: it holds a cluster's PKI ({BOOTSTRAP_KEY}); "
                               "use --overwrite to replace it")
        return f"{source.pki_dir} -> {BOOTSTRAP_KEY}"
    if _has_pki(target.pki_dir) and not overwrite:
        raise CommandError(f"{target.pki_dir} already holds a cluster's PKI; use --overwrite to replace it")
    return f"{BOOTSTRAP_KEY} -> {target.pki_dir}" if source.etcd else f"{source.pki_dir} -> {target.pki_dir}"


async def _move_pki(source: Location, source_store: Store, target: Location, target_store: Store,
                    token: str) -> bool:
    """Put the source's PKI where the target keeps it; False when the source has none."""
    from .api.pki import PKI
    from .api.shared_pki import BOOTSTRAP_KEY, SHARED_FILES, share_pki

    if source.etcd and target.etcd:
        return await source_store.get(BOOTSTRAP_KEY) is not None  # copied with the keys under BOOTSTRAP_PREFIX
    if source.etcd:  # the store's record, decrypted, into DIR/pki
        assert target.pki_dir is not None
        if await source_store.get(BOOTSTRAP_KEY) is None:
            return False
        await share_pki(source_store, PKI(target.pki_dir), _PKI_HOSTS, token)  # the key exists: adopted, not written
        return True
    assert source.pki_dir is not None
    missing = [name for name in SHARED_FILES if not (source.pki_dir / name).exists()]
    if missing:
        raise CommandError(f"{source.pki_dir} lacks {', '.join(missing)}; not a podlife PKI")
    if not target.etcd:
        assert target.pki_dir is not None
        target.pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in SHARED_FILES:
            shutil.copy2(source.pki_dir / name, target.pki_dir / name)
        return True
    await target_store.delete(BOOTSTRAP_KEY)  # only there with --overwrite (checked before)
    with tempfile.TemporaryDirectory(prefix="podlife-migrate-pki-") as scratch:
        copy = Path(scratch) / "pki"
        copy.mkdir(mode=0o700)
        for name in SHARED_FILES:  # a copy: the source's directory is left exactly as it was
            shutil.copy2(source.pki_dir / name, copy / name)
        if await share_pki(target_store, PKI(copy), _PKI_HOSTS, token):
            raise CommandError(f"another server wrote a PKI into the target ({BOOTSTRAP_KEY}) during the migration")
    return True


# ---- output -----------------------------------------------------------------------


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def format_report(report: MigrateReport, source: Location, target: Location, *, dry_run: bool,
                  pki: str | None) -> str:
    """The per-resource table, the total and the summary line."""
    rows = [(name, str(count)) for name, count in sorted(report.counts.items())]
    rows += [(f"{name} (skipped)", str(count)) for name, count in sorted(report.skipped.items())]
    rows.append(("TOTAL", str(report.total)))
    width = max(len("RESOURCE"), *(len(name) for name, _ in rows)) + 3
    lines = [f"{'RESOURCE':<{width}}OBJECTS", *(f"{name:<{width}}{count}" for name, count in rows)]
    where = f"from {source.describe()} (revision {report.source_revision}) to {target.describe()}"
    if dry_run:
        lines.append(f"would copy {report.total} objects ({_size(report.bytes)}) {where}; nothing was written")
        if report.target_keys:
            lines.append(f"the target holds {report.target_keys} keys: the migration would be refused "
                         "without --overwrite (which deletes them first)")
    else:
        deleted = f", after deleting the target's {report.deleted} keys" if report.deleted else ""
        bumped = (f", raised past the source's first ({report.bump_seconds:.2f}s)"
                  if report.bump_seconds else "")
        lines.append(f"copied {report.total} objects ({_size(report.bytes)}) {where} (revision "
                     f"{report.target_revision_before} -> {report.target_revision_after}{bumped}){deleted} "
                     f"in {report.seconds:.2f}s")
    if pki is not None:
        lines.append(f"pki: {'would be ' if dry_run else ''}{pki}")
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------


async def run_migration(args: argparse.Namespace) -> int:
    source = parse_location(args.source, must_exist=True)
    target = parse_location(args.target, must_exist=False)
    if source.describe() == target.describe() or (source.db is not None and target.db is not None
                                                  and source.db.resolve() == target.db.resolve()):
        raise CommandError("--from and --to name the same store")
    for where, role in ((source, "source"), (target, "target")):
        if not where.etcd:
            _check_sqlite(where, role)
    token, token_origin = cluster_token(args.cluster_token_file)
    copy_bootstrap = source.etcd and target.etcd and not args.skip_pki
    options = MigrateOptions(prefixes=(REGISTRY_PREFIX, BOOTSTRAP_PREFIX) if copy_bootstrap else (REGISTRY_PREFIX,),
                             skip_prefixes=EVENT_PREFIXES if args.skip_events else (),
                             overwrite=args.overwrite, dry_run=args.dry_run,
                             bump_revision=not args.no_bump_revision)
    source_store = _open(source, args)
    await source_store.start()
    try:
        target_store = _open(target, args)
        await target_store.start()
        try:
            pki = await _precheck(args, options, source, target, target_store)
            revision_before = target_store.revision
            if pki is not None and not args.dry_run:  # first: a wrong cluster token fails before any object moves
                if not await _move_pki(source, source_store, target, target_store, token):
                    pki = "none in the source"
                elif target.etcd and not source.etcd:
                    pki += f" (encrypted with {token_origin})"
            target_store, bumped = await _bump_etcd_first(args, options, source_store, target, target_store)
            report = await migrate(source_store, target_store, options, bumper=_etcd_bumper(target, args))
            report.target_revision_before = revision_before
            report.bump_seconds += bumped
            report.seconds += bumped
        finally:
            await target_store.close()
    finally:
        await source_store.close()
    print(format_report(report, source, target, dry_run=args.dry_run, pki=pki))
    if report.existed:
        print(f"podlife migrate: {len(report.existed)} keys appeared in the target during the copy and were left as "
              f"they were (e.g. {report.existed[0]}): is a server using it?", file=sys.stderr)
        return 1
    return 0


async def _precheck(args: argparse.Namespace, options: MigrateOptions, source: Location, target: Location,
                    target_store: Store) -> str | None:
    """Refuse a non-empty target before anything is written; what the PKI step will do."""
    present = (await snapshot(target_store, options.prefixes))[1] if not args.dry_run else []
    if present and not args.overwrite:  # the objects first: the likelier reason to refuse
        raise TargetNotEmpty(len(present), present[0].key)
    if args.skip_pki:
        return None
    return await _pki_precheck(source, target, target_store, args.overwrite or args.dry_run)


async def _bump_etcd_first(args: argparse.Namespace, options: MigrateOptions, source_store: Store,
                           target: Location, target_store: Store) -> tuple[Store, float]:
    """Raise an etcd target's revision past the source's with the target's mirror closed, then open it again.

    The mirror would otherwise follow every one of those writes through its watch, which
    halves the rate in this one process. :func:`~podlife.store.migrate.migrate` raises
    what is left, if the source moved on meanwhile.
    """
    if not (target.etcd and options.bump_revision and not options.dry_run
            and target_store.revision <= source_store.revision):
        return target_store, 0.0
    bumper = _etcd_bumper(target, args)
    assert bumper is not None
    await target_store.close()
    started = time.monotonic()
    await bumper(source_store.revision + 1)
    seconds = time.monotonic() - started
    reopened = _open(target, args)
    await reopened.start()
    return reopened, seconds


def _run(args: argparse.Namespace) -> int:
    from .api.shared_pki import SharedPKIError

    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # the table is the output; -v shows the stores' logs
    try:
        return asyncio.run(run_migration(args))
    except (CommandError, StoreError, SharedPKIError, ValueError) as exc:
        print(f"podlife migrate: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"podlife migrate: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
    except KeyboardInterrupt:
        print("podlife migrate: interrupted; the target may hold part of the objects (--overwrite replaces them)",
              file=sys.stderr)
    return 1


def add_parser(subparsers: Any) -> None:
    """Register ``podlife migrate``."""
    p = subparsers.add_parser(
        "migrate", help="copy a stopped cluster's objects from one store to another (e.g. SQLite to etcd)",
        description="Copy every object of a cluster from one store to another, read at one revision, each "
                    "created in the target only if absent; uids and contents stay, resourceVersions become the "
                    "target's revisions. The source must not be in use. docs/migrate.md.")
    p.add_argument("--from", dest="source", required=True, metavar="STORE",
                   help=f"the store to copy: sqlite://DIR (a podlife data directory, or its {STORE_FILE}; a bare "
                        "path too) or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")
    p.add_argument("--to", dest="target", required=True, metavar="STORE",
                   help="the store to copy into, named the same way; it must be empty unless --overwrite")
    p.add_argument("--cluster-token-file", type=Path, default=None, metavar="FILE",
                   help="the cluster token the PKI is kept under in an etcd store (encrypted into the target, or "
                        "decrypted from the source); give the servers on the target the same file (default: "
                        "$PODLIFE_CLUSTER_TOKEN, else none, as podlife server)")
    p.add_argument("--skip-pki", action="store_true",
                   help="do not copy the cluster's CA, signing keys and admin credentials (servers on the target "
                        "then make a new CA: old kubeconfigs and service-account tokens stop working)")
    p.add_argument("--skip-events", action="store_true",
                   help="leave the Events (core/v1 and events.k8s.io/v1) behind (default: copy them)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete every object (and the PKI) the target holds first, instead of refusing a "
                        "non-empty target")
    p.add_argument("--no-bump-revision", action="store_true",
                   help="do not first raise the target's revision past the source's (default: raise it, so every "
                        "resourceVersion a client of the old store holds is older than the copied objects and a "
                        "watch resumed from one gets 410 Gone, as etcdutl snapshot restore --bump-revision)")
    p.add_argument("--dry-run", action="store_true",
                   help="read the source and the target and print what would be copied; write nothing")
    p.add_argument("--etcd-cafile", type=Path, default=None, metavar="FILE", help="CA bundle to verify etcd's serving certificates")
    p.add_argument("--etcd-certfile", type=Path, default=None, metavar="FILE", help="client certificate presented to etcd")
    p.add_argument("--etcd-keyfile", type=Path, default=None, metavar="FILE", help="its private key")
    p.set_defaults(run_command=_run)
