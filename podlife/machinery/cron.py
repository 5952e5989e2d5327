"""Cron schedules as Kubernetes' CronJob validation parses them (robfig/cron v3 ``ParseStandard``).

What it reads: one ``spec.schedule`` string. What it gives: :func:`schedule_error`, the
parser's error text (``None`` when the schedule parses), which the CronJob validation
shows after ``spec.schedule: Invalid value: "<schedule>": `` exactly as Kubernetes does.

Facts followed (``github.com/robfig/cron/v3`` ``parser.go``, used by
``pkg/apis/batch/validation/validation.go`` ``validateScheduleFormat``):

* five fields -- minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
  ``jan``-``dec``), day of week (0-6 or ``sun``-``sat``); each a comma list of ``*``/``?``,
  ``N``, ``N-M``, with an optional ``/step``;
* descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` and
  ``@every <Go duration>``;
* an optional ``TZ=<zone>`` / ``CRON_TZ=<zone>`` prefix;
* the error wording of each failure (``expected exactly 5 fields, found 3: [* * *]``,
  ``end of range (60) above maximum (59): 60``, ``failed to parse int from x:
  strconv.Atoi: parsing "x": invalid syntax``...), Go's ``strconv.Atoi`` and
  ``time.ParseDuration`` messages included.
"""

from __future__ import annotations

import re
import zoneinfo

_MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: (min, max, names) of the five standard fields, in order
_FIELDS = ((0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_DESCRIPTORS = frozenset(("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"))
_INT64_MAX = (1 << 63) - 1
_ATOI_RE = re.compile(r"^[+-]?[0-9]+$")


class CronError(ValueError):
    """A schedule robfig/cron refuses; ``str()`` is its message."""


def schedule_error(spec: str) -> str | None:
    """robfig/cron's error for ``spec``, or ``None`` when it is a valid standard schedule."""
    try:
        _parse(spec)
    except CronError as err:
        return str(err)
    return None


def _parse(spec: str) -> None:
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space, eq = spec.find(" "), spec.find("=")
        zone = spec[eq + 1:space] if space > eq else spec[eq + 1:]
        problem = time_zone_error(zone)
        if problem is not None:
            raise CronError(f"provided bad location {zone}: {problem}")
        spec = spec[space:].strip() if space > eq else ""
    if spec.startswith("@"):
        _parse_descriptor(spec)
        return
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for text, (low, high, names) in zip(fields, _FIELDS):
        for expr in (part for part in text.split(",") if part):
            _check_range(expr, low, high, names)


def _check_range(expr: str, low: int, high: int, names: dict[str, int] | None) -> None:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _int_or_name(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _non_negative_int(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
    elif len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def _int_or_name(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    return _non_negative_int(text)


def _non_negative_int(text: str) -> int:
    if not _ATOI_RE.match(text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing {_go_quote(text)}: invalid syntax')
    number = int(text)
    if abs(number) > _INT64_MAX:
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing {_go_quote(text)}: value out of range')
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {text}")
    return number


def _parse_descriptor(spec: str) -> None:
    if spec in _DESCRIPTORS:
        return
    every = "@every "
    if spec.startswith(every):
        problem = go_duration_error(spec[len(every):])
        if problem is not None:
            raise CronError(f"failed to parse duration {spec}: {problem}")
        return
    raise CronError(f"unrecognized descriptor: {spec}")


# --------------------------------------------------------------------------- Go helpers

_UNITS = ("ns", "us", "µs", "μs", "ms", "s", "m", "h")
_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def go_duration_error(text: str) -> str | None:
    """``time.ParseDuration``'s error for ``text`` (``None`` when it parses)."""
    quoted = _go_quote(text)
    rest = text
    if rest[:1] in ("+", "-"):
        rest = rest[1:]
    if rest == "0":
        return None
    if not rest:
        return f"time: invalid duration {quoted}"
    while rest:
        match = _DURATION_RE.match(rest)
        number, unit = (match.group(1), match.group(2)) if match else ("", "")
        if number in ("", ".") or rest[:1] not in "0123456789.":
            return f"time: invalid duration {quoted}"
        if not unit:
            return f"time: missing unit in duration {quoted}"
        if unit not in _UNITS:
            return f"time: unknown unit {_go_quote(unit)} in duration {quoted}"
        rest = rest[len(number) + len(unit):]
    return None


def time_zone_error(zone: str) -> str | None:
    """``time.LoadLocation``'s error for ``zone`` (``""`` and ``UTC`` are UTC, ``Local`` is local)."""
    if zone in ("", "UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {zone}"
    return None


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
