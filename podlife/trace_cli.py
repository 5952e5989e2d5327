"""``podlife trace``: a pod's life as the cluster recorded it, read from the ``podtraces`` API.

    podlife trace pod/NAME [-n NS] [--diff] [--follow] [-o json|yaml] [--kubeconfig FILE]
    podlife trace --summary [-n NS | -A]

What it reads: ``GET /apis/trace.podlife.io/v1alpha1/namespaces/NS/podtraces/NAME`` (the
PodTrace object: stages, and every recorded write with its writer and field diff; format in
``docs/tracing.md``), its watch (``--follow``), or the list of podtraces (``--summary``: the
list carries stages only, no records, so it stays cheap over thousands of pods). The cluster
is found as kubectl finds it: ``--kubeconfig``, else ``$KUBECONFIG``, else
``./.podlife/kubeconfig`` (what ``podlife up`` writes); the namespace is ``-n``, else the
context's, else ``default``.

What it writes: to stdout, a header (pod, node, phase, ``gone`` once deleted) and a timeline
(stage, offset from creation, duration, writer, reason and message; failures in red), the
records with their diffs (``--diff``: added green, removed red, changed yellow, ``path: old ->
new``), new stages as they begin (``--follow``), the object itself (``-o``), or per-stage
percentiles and the slowest pods (``--summary``). On a terminal it uses rich (colours, a
table); otherwise plain aligned columns without box art or escape codes, so ``grep`` works.
Errors read as kubectl's (``Error from server (NotFound): ...``) and exit with 1.

Why this shape: the rendering functions are pure (a PodTrace dict in, rows or rich ``Text``
out), so tests check them on hand-built objects, and the same functions serve the terminal
and the plain output; only :func:`run` talks to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["PODTRACES", "Row", "add_parser", "diff_lines", "fmt_offset", "fmt_seconds", "fmt_value",
           "header_fields", "main", "new_stages", "parse_target", "percentile", "plain_table", "record_line",
           "render_diff", "render_summary", "render_timeline", "resolve_kubeconfig", "run", "summarize",
           "timeline_rows"]

GROUP_VERSION = "trace.podlife.io/v1alpha1"
TIMELINE_HEADERS = ("STAGE", "OFFSET", "DURATION", "WRITER", "REASON", "MESSAGE")
DEFAULT_KUBECONFIG = Path(".podlife") / "kubeconfig"
SLOWEST = 10


def _podtraces_resource() -> Any:
    from .client.base import Resource

    return Resource("trace.podlife.io", "v1alpha1", "podtraces", "PodTrace")


PODTRACES = _podtraces_resource()


# --------------------------------------------------------------------------- formatting (pure)


def fmt_offset(seconds: float | None) -> str:
    """An offset from the pod's creation: ``+0.012s``."""
    return "-" if seconds is None else f"+{seconds:.3f}s"


def fmt_seconds(seconds: float | None) -> str:
    """A duration: ``0.200s``; ``-`` while the stage is still the current one."""
    return "-" if seconds is None else f"{seconds:.3f}s"


def fmt_value(value: Any) -> str:
    """A diffed field's value as a user reads it: strings bare, the rest as compact JSON."""
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def parse_target(text: str) -> str:
    """The pod name of ``pod/NAME`` (``pods/``, ``po/`` too) or a bare ``NAME``, as kubectl reads it."""
    kind, sep, name = text.partition("/")
    if not sep:
        return text
    if kind.lower() not in ("pod", "pods", "po", "podtrace", "podtraces"):
        raise ValueError(f'the server doesn\'t have a resource type "{kind}" to trace (only pods)')
    if not name:
        raise ValueError(f"arguments in resource/name form must have a single resource and name: {text!r}")
    return name


def header_fields(trace: dict) -> list[tuple[str, str]]:
    """The describe-style header: who the pod is, where it runs, and whether it still exists."""
    meta, status = trace.get("metadata") or {}, trace.get("status") or {}
    deleted = bool(status.get("deleted"))
    return [("Name", str(meta.get("name", ""))), ("Namespace", str(meta.get("namespace", ""))),
            ("UID", str(status.get("podUID") or meta.get("uid") or "")),
            ("Node", str(status.get("nodeName") or "<none>")), ("Phase", str(status.get("phase") or "<unknown>")),
            ("Deleted", "true (gone)" if deleted else "false")]


@dataclass(frozen=True)
class Row:
    """One line of a table: its cells, and whether it is a failure (coloured red)."""

    cells: tuple[str, ...]
    failed: bool = False


def timeline_rows(trace: dict) -> list[Row]:
    """One row per stage in the order they began: TIMELINE_HEADERS' columns."""
    rows = []
    for stage in (trace.get("status") or {}).get("stages") or []:
        rows.append(Row((str(stage.get("name", "")), fmt_offset(stage.get("offsetSeconds")),
                         fmt_seconds(stage.get("durationSeconds")), str(stage.get("writer") or ""),
                         str(stage.get("reason") or ""), _one_line(stage.get("message") or "")),
                        failed=bool(stage.get("failed"))))
    return rows


def new_stages(printed: dict | None, current: dict) -> list[dict]:
    """The stages of ``current`` that ``printed`` did not have (``--follow``): a new life starts over."""
    stages = (current.get("status") or {}).get("stages") or []
    if printed is None or _uid(printed) != _uid(current):
        return list(stages)
    seen = len((printed.get("status") or {}).get("stages") or [])
    return list(stages[seen:])


def record_line(record: dict) -> str:
    """A record's heading: ``rv 123  +0.012s  Pod/tr  update  system:kube-scheduler``."""
    parts = [f"rv {record.get('resourceVersion', '?')}", fmt_offset(record.get("offsetSeconds")),
             f"{record.get('kind', '?')}/{record.get('name', '?')}", str(record.get("verb", "?")),
             str(record.get("writer") or "?")]
    user = record.get("user")
    if user and user != record.get("writer"):
        parts.append(f"(user {user})")
    return "  ".join(parts)


_DIFF_STYLE = {"add": ("+", "green"), "remove": ("-", "red"), "replace": ("~", "yellow")}


def diff_lines(record: dict) -> list[tuple[str, str]]:
    """(style, text) per changed field: ``+ path: new``, ``- path: old``, ``~ path: old -> new``."""
    out = []
    for change in record.get("diff") or []:
        op, path = change.get("op", "replace"), change.get("path", "")
        sign, style = _DIFF_STYLE.get(op, ("~", "yellow"))
        if op == "add":
            text = f"{path}: {fmt_value(change.get('new'))}"
        elif op == "remove":
            text = f"{path}: {fmt_value(change.get('old'))}"
        else:
            text = f"{path}: {fmt_value(change.get('old'))} -> {fmt_value(change.get('new'))}"
        out.append((style, f"{sign} {text}"))
    return out


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, indent: str = "") -> list[str]:
    """Columns padded to their widest cell, three spaces apart, as ``kubectl get`` prints them."""
    table = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return [indent + "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


# --------------------------------------------------------------------------- summary (pure)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (as the benchmarks compute theirs); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def summarize(traces: list[dict]) -> dict[str, Any]:
    """Per stage: how many pods reached it, p50/p90/p99 of its duration and of its offset; the slowest pods
    (creation -> Ready, else -> their last stage); the stage where most of the pods' time went."""
    durations: dict[str, list[float]] = {}
    offsets: dict[str, list[float]] = {}
    slowest = []
    for trace in traces:
        stages = (trace.get("status") or {}).get("stages") or []
        for stage in stages:
            name = str(stage.get("name", ""))
            offsets.setdefault(name, [])
            durations.setdefault(name, [])
            if stage.get("offsetSeconds") is not None:
                offsets[name].append(float(stage["offsetSeconds"]))
            if stage.get("durationSeconds") is not None:
                durations[name].append(float(stage["durationSeconds"]))
        end = next((s for s in stages if s.get("name") == "Ready" and s.get("offsetSeconds") is not None), None)
        if end is None:
            end = next((s for s in reversed(stages) if s.get("offsetSeconds") is not None), None)
        if end is not None:
            meta = trace.get("metadata") or {}
            slowest.append({"namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                            "node": (trace.get("status") or {}).get("nodeName") or "<none>",
                            "to": end.get("name", ""), "seconds": float(end["offsetSeconds"])})
    stage_rows: list[dict[str, Any]] = []
    for name in offsets:
        d, o = durations[name], offsets[name]
        stage_rows.append({"stage": name, "pods": len(o), "total_seconds": sum(d),
                           **{f"duration_p{p}": percentile(d, p) for p in (50, 90, 99)},
                           **{f"offset_p{p}": percentile(o, p) for p in (50, 90, 99)}})
    stage_rows.sort(key=lambda r: (r["offset_p50"] is None, r["offset_p50"] or 0.0))
    total = sum(r["total_seconds"] for r in stage_rows)
    hot = max(stage_rows, key=lambda r: r["total_seconds"], default=None)
    slowest.sort(key=lambda r: -r["seconds"])
    return {"pods": len(traces), "deleted": sum(1 for t in traces if (t.get("status") or {}).get("deleted")),
            "stages": stage_rows, "slowest": slowest[:SLOWEST],
            "most_time": None if hot is None or hot["total_seconds"] <= 0 else
            {"stage": hot["stage"], "total_seconds": hot["total_seconds"],
             "share": hot["total_seconds"] / total if total else 0.0}}


# --------------------------------------------------------------------------- rendering


def render_timeline(console: Console, trace: dict) -> None:
    """The header and the timeline table (rich on a terminal, plain columns otherwise)."""
    fields = header_fields(trace)
    width = max(len(k) for k, _ in fields) + 2
    for key, value in fields:
        style = "bold red" if key == "Deleted" and value != "false" else "bold" if key == "Name" else ""
        console.print(Text(f"{key + ':':<{width}}") + Text(value, style=style), highlight=False)
    console.print()
    rows = timeline_rows(trace)
    if not rows:
        console.print("No stages recorded.", highlight=False)
        return
    _table(console, TIMELINE_HEADERS, [r.cells for r in rows], failed=[r.failed for r in rows],
           right=("OFFSET", "DURATION"))


def render_diff(console: Console, trace: dict) -> None:
    """Every record, oldest first, with its field diff (``--diff``)."""
    records = (trace.get("status") or {}).get("records") or []
    console.print()
    _plain(console, f"Records ({len(records)}):")
    for record in records:
        console.print(Text(record_line(record), style="bold"), highlight=False)
        for style, text in diff_lines(record):
            console.print(Text("    " + text, style=style), highlight=False)


def render_follow_rows(console: Console, stages: list[dict]) -> None:
    """New stages as they begin (``--follow``): one aligned line each, failures in red."""
    for stage in stages:
        row = timeline_rows({"status": {"stages": [stage]}})[0]
        stage_name, offset, _duration, writer, reason, message = row.cells
        line = f"{stage_name:<22} {offset:>10}   {writer:<32} {reason} {message}".rstrip()
        console.print(Text(line, style="red" if row.failed else ""), highlight=False)


def render_summary(console: Console, summary: dict[str, Any], scope: str) -> None:
    """``--summary``: the per-stage percentiles, the stage where time goes, the slowest pods."""
    _plain(console, f"Traced pods: {summary['pods']} in {scope} ({summary['deleted']} gone)")
    if not summary["pods"]:
        return
    headers = ("STAGE", "PODS", "DURATION P50", "P90", "P99", "OFFSET P50", "P90", "P99")
    rows = [(r["stage"], str(r["pods"]), *(fmt_seconds(r[f"duration_p{p}"]) for p in (50, 90, 99)),
             *(fmt_offset(r[f"offset_p{p}"]) for p in (50, 90, 99))) for r in summary["stages"]]
    console.print()
    _table(console, headers, rows)
    hot = summary["most_time"]
    if hot is not None:
        console.print()
        console.print(Text("Most time goes to: ") + Text(hot["stage"], style="bold yellow")
                      + Text(f" ({hot['total_seconds']:.3f}s in all, {hot['share'] * 100:.0f}% of the pods' "
                             "staged time)"), highlight=False)
    console.print()
    _plain(console, f"Slowest pods (creation -> Ready, else -> last stage), top {SLOWEST}:")
    _table(console, ("NAMESPACE", "NAME", "NODE", "TO", "SECONDS"),
           [(r["namespace"], r["name"], r["node"], r["to"], fmt_seconds(r["seconds"])) for r in summary["slowest"]])


def _table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
           failed: Sequence[bool] = (), right: Sequence[str] = ()) -> None:
    """A table: on a terminal a rich one when it fits the width (else the aligned lines, coloured, which the
    terminal wraps: no cell is cut); failed rows red. Plain aligned lines otherwise."""
    lines = plain_table(headers, rows)
    if not console.is_terminal:
        for line in lines:
            _plain(console, line)
        return
    if max(len(line) for line in lines) <= console.width:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header in headers:
            table.add_column(header, no_wrap=True, justify="right" if header in right else "left")
        for i, row in enumerate(rows):
            table.add_row(*row, style="red" if i < len(failed) and failed[i] else None)
        console.print(table)
        return
    console.print(Text(lines[0], style="bold"), highlight=False, soft_wrap=True)
    for i, line in enumerate(lines[1:]):
        console.print(Text(line, style="red" if i < len(failed) and failed[i] else ""), highlight=False,
                      soft_wrap=True)


def _plain(console: Console, line: str) -> None:
    """A line as is: no markup, no highlighting, no wrapping (so plain output greps as written)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _uid(trace: dict) -> str:
    return str((trace.get("status") or {}).get("podUID") or (trace.get("metadata") or {}).get("uid") or "")


# --------------------------------------------------------------------------- the command


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``trace`` to ``podlife``'s subcommands."""
    p = subparsers.add_parser("trace", help="show a pod's life: stages with timings and writers, field diffs",
                              description="Show a pod's recorded life (the podtraces API, trace.podlife.io).")
    p.add_argument("target", nargs="?", metavar="pod/NAME", help="the pod (pod/NAME or NAME)")
    p.add_argument("-n", "--namespace", default=None, help="the pod's namespace (default: the context's, else default)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="with --summary: every namespace")
    p.add_argument("--diff", action="store_true", help="after the timeline, every recorded write with its field diff")
    p.add_argument("-f", "--follow", action="store_true", help="print new stages as they begin, until the pod is gone")
    p.add_argument("-o", "--output", choices=("json", "yaml"), default=None, help="print the PodTrace object")
    p.add_argument("--summary", action="store_true",
                   help="per-stage p50/p90/p99 over every traced pod, the slowest pods, where the time goes")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig to use (default: $KUBECONFIG, else ./.podlife/kubeconfig)")
    return p


def resolve_kubeconfig(flag: Path | None, env: str | None, cwd: Path) -> Path:
    """kubectl's order: ``--kubeconfig``, then ``$KUBECONFIG`` (its first existing file), then podlife's."""
    if flag is not None:
        return flag
    for part in (env or "").split(os.pathsep):
        if part and Path(part).is_file():
            return Path(part)
    return cwd / DEFAULT_KUBECONFIG


def _context_namespace(path: Path) -> str | None:
    import yaml

    cfg = yaml.safe_load(path.read_text()) or {}
    current = cfg.get("current-context")
    for ctx in cfg.get("contexts") or []:
        if ctx.get("name") == current:
            return (ctx.get("context") or {}).get("namespace") or None
    return None


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Carry out ``podlife trace``; the exit code (1 on any error, printed as kubectl prints it)."""
    out = console or Console(soft_wrap=True)
    try:
        if not args.summary and not args.target:
            raise ValueError("you must specify the pod to trace (pod/NAME), or --summary")
        if args.all_namespaces and not args.summary:
            raise ValueError("-A/--all-namespaces goes with --summary")
        name = parse_target(args.target) if args.target else ""
        path = resolve_kubeconfig(args.kubeconfig, os.environ.get("KUBECONFIG"), Path.cwd())
        if not path.is_file():
            raise ValueError(f"no kubeconfig at {path} (start `podlife up`, or give --kubeconfig or $KUBECONFIG)")
        namespace = args.namespace or _context_namespace(path) or "default"
        return asyncio.run(_run(args, out, path, namespace, name))
    except KeyboardInterrupt:
        return 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except _Failure as exc:
        print(exc, file=sys.stderr)
    return 1


class _Failure(Exception):
    """An error to print as is (kubectl's wording)."""


async def _run(args: argparse.Namespace, out: Console, kubeconfig: Path, namespace: str, name: str) -> int:
    import aiohttp

    from .client.http import HTTPClient
    from .machinery.errors import ApiError

    client = HTTPClient.from_kubeconfig(kubeconfig, max_connections=2)
    try:
        if args.summary:
            path = (f"/apis/{GROUP_VERSION}/podtraces" if args.all_namespaces
                    else PODTRACES.path(namespace))
            listed = await client.request("GET", path)
            items = listed.get("items") or []
            if args.output:
                _dump(out, listed, args.output)
            else:
                render_summary(out, summarize(items), "all namespaces" if args.all_namespaces
                               else f"namespace {namespace}")
            return 0
        trace = await client.request("GET", PODTRACES.path(namespace, name))
        if args.output:
            _dump(out, trace, args.output)
            return 0
        render_timeline(out, trace)
        if args.diff:
            render_diff(out, trace)
        if args.follow:
            await _follow(client, out, namespace, name, trace)
        return 0
    except ApiError as exc:
        raise _Failure(_server_error(exc)) from None
    except aiohttp.ClientConnectorError as exc:
        raise _Failure(f"The connection to the server {exc.host}:{exc.port} was refused - "
                       "did you specify the right host or port?") from None
    finally:
        await client.close()


def _server_error(exc: Any) -> str:
    """kubectl's line for an API error: ``Error from server (NotFound): <the Status message>``."""
    reason = exc.reason if exc.reason and exc.reason != "Unknown" else {404: "NotFound", 403: "Forbidden",
                                                                         401: "Unauthorized"}.get(exc.code, "")
    message = exc.message if exc.reason != "Unknown" or exc.code != 404 else \
        "the server could not find the requested resource"
    return f"Error from server ({reason}): {message}" if reason else f"Error from server: {message}"


async def _follow(client: Any, out: Console, namespace: str, name: str, trace: dict) -> None:
    """Watch the podtrace; print each stage as it begins; stop once the pod is gone (or on Ctrl-C)."""
    from .machinery.errors import ApiError

    printed: dict = trace
    rv = (trace.get("metadata") or {}).get("resourceVersion")
    if out.is_terminal:
        out.print(Text("Following; Ctrl-C stops.", style="dim"), highlight=False)
    while not (printed.get("status") or {}).get("deleted"):
        try:
            async for event in client.watch(PODTRACES, namespace, field_selector=f"metadata.name={name}",
                                            resource_version=rv, timeout_seconds=300):
                obj = event.object
                if event.type == "BOOKMARK":
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    continue
                if event.type == "DELETED":  # retention dropped the trace
                    return
                if _uid(obj) != _uid(printed):
                    out.print()
                    render_timeline(out, {"metadata": obj.get("metadata"),
                                          "status": {**(obj.get("status") or {}), "stages": []}})
                render_follow_rows(out, new_stages(printed, obj))
                printed, rv = obj, (obj.get("metadata") or {}).get("resourceVersion") or rv
                if (obj.get("status") or {}).get("deleted"):
                    break
        except ApiError as exc:
            if exc.code != 410:
                raise
            printed_now = await client.request("GET", PODTRACES.path(namespace, name))
            render_follow_rows(out, new_stages(printed, printed_now))
            printed, rv = printed_now, (printed_now.get("metadata") or {}).get("resourceVersion")
    _plain(out, f"pod {namespace}/{name} is gone")


def _dump(out: Console, obj: Any, fmt: str) -> None:
    if fmt == "json":
        text = json.dumps(obj, indent=4)
    else:
        import yaml

        text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")
    print(text, file=out.file, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m podlife.trace_cli pod/NAME ...``: the command on its own."""
    parser = argparse.ArgumentParser(prog="podlife")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["trace", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
