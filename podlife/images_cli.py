"""``podlife images``: the container images of a local node (``ls``, ``pull``, ``load``, ``rm``).

The store is the one the node's kubelet uses, ``<data-dir>/nodes/<node>/images``
(:class:`~podlife.kubelet.oci.image_store.ImageStore`); the node defaults to this
machine's, named as ``podlife up`` names it. The commands work whether or not the
cluster is running: the store locks its index while it changes it.

Output follows ``crictl``: ``ls`` prints IMAGE, TAG, IMAGE ID (13 hex digits) and
SIZE columns (``--digests`` adds DIGEST, ``-q`` prints full IDs only); ``pull`` says
``Image is up to date for sha256:...``; ``rm`` says ``Deleted: <name>``. ``load``
takes an OCI image layout directory, a tar of one, or a docker archive, and prints
``Loaded image: <reference>`` per image, as ``docker load`` does.

``add_parser`` wires the subcommand into ``podlife``'s parser; ``run`` carries it
out and returns the exit code. ``python -m podlife.images_cli images ls`` runs it
on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "human_size", "image_rows", "main", "run", "store_root"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``images`` (with ``ls``, ``pull``, ``load``, ``rm``) to ``podlife``'s subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=Path(".podlife"),
                        help="podlife's data directory (default: ./.podlife)")
    common.add_argument("--node", default=None,
                        help="the local node whose images to use (default: this machine's, as `podlife up` names it)")
    images = subparsers.add_parser("images", help="list, pull, load and remove the container images of a local node")
    sub = images.add_subparsers(dest="images_command", required=True)
    ls = sub.add_parser("ls", parents=[common], help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    ls.add_argument("--digests", action="store_true", help="show repo digests")
    pull = sub.add_parser("pull", parents=[common], help="pull an image from its registry")
    pull.add_argument("image", help="image reference (busybox, 127.0.0.1:5000/team/app:v1, repo@sha256:...)")
    pull.add_argument("--creds", default=None, metavar="USERNAME[:PASSWORD]",
                      help="credentials for the image's registry")
    pull.add_argument("--platform", default=None, help="os/arch to pick from a multi-platform image (default: this machine's)")
    load = sub.add_parser("load", parents=[common], help="load images from an OCI layout (directory or tar) or docker archive")
    load.add_argument("path", type=Path, metavar="FILE|DIR")
    rm = sub.add_parser("rm", parents=[common], help="remove images (every reference of each)")
    rm.add_argument("images", nargs="+", metavar="IMAGE", help="reference or image ID (a unique prefix will do)")
    return images


def store_root(data_dir: Path, node: str | None) -> Path:
    """``<data-dir>/nodes/<node>/images`` (the node defaulting to this machine's name)."""
    if node is None:
        from podlife.cluster import default_node_name

        node = default_node_name()
    return Path(data_dir) / "nodes" / node / "images"


def human_size(size: float) -> str:
    """Decimal units with three significant digits, as ``crictl images`` prints sizes (``1.23MB``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def image_rows(images: list[Any], *, digests: bool = False) -> list[list[str]]:
    """``crictl images`` rows: one per reference (an untagged image gets one ``<none>`` row)."""
    rows = [["IMAGE", "TAG", *(["DIGEST"] if digests else []), "IMAGE ID", "SIZE"]]
    for image in images:
        digest = image.repo_digest.rsplit("@", 1)[-1].removeprefix("sha256:")[:13] if image.repo_digest else "<none>"
        names = list(image.references) or [None]
        for name in names:
            if name is None:
                repo = image.repo_digest.rsplit("@", 1)[0] if image.repo_digest else "<none>"
                tag = "<none>"
            else:
                repo, tag = _repo_and_tag(name)
            rows.append([repo, tag, *([digest] if digests else []), image.short_id, human_size(image.size)])
    return rows


def _repo_and_tag(reference: str) -> tuple[str, str]:
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "<none>"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def run(args: argparse.Namespace) -> int:
    """Carry out ``podlife images ...``; the exit code (errors go to stderr)."""
    from podlife.kubelet.oci.image_store import ImageStore, ImageStoreError
    from podlife.kubelet.oci.registry import PullError, parse_reference

    store = ImageStore(store_root(args.data_dir, args.node), platform=getattr(args, "platform", None))
    try:
        if args.images_command == "ls":
            images = store.list()
            if args.quiet:
                print("\n".join(image.id for image in images))
            else:
                print(_table(image_rows(images, digests=args.digests)))
            return 0
        if args.images_command == "pull":
            credentials = {}
            if args.creds:
                user, _, password = args.creds.partition(":")
                credentials[parse_reference(args.image).domain] = (user, password)
            image = await store.pull(args.image, credentials=credentials)
            print(f"Image is up to date for {image.id}")
            return 0
        if args.images_command == "load":
            for image in await store.load(args.path):
                for name in image.references or (image.id,):
                    print(f"Loaded image: {name}" if name != image.id else f"Loaded image ID: {name}")
            return 0
        if args.images_command == "rm":
            status = 0
            for name in args.images:
                try:
                    await store.remove(name)
                    print(f"Deleted: {name}")
                except ImageStoreError as exc:
                    print(f"podlife images: {_message(exc)}", file=sys.stderr)
                    status = 1
            return status
    except (PullError, ImageStoreError, ValueError) as exc:
        print(f"podlife images: {_message(exc)}", file=sys.stderr)
        return 1
    raise AssertionError(f"unknown images command {args.images_command!r}")


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def main(argv: list[str] | None = None) -> int:
    """``python -m podlife.images_cli images ...``: the subcommand without the rest of ``podlife``."""
    parser = argparse.ArgumentParser(prog="podlife")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
