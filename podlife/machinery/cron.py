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

Next activations (what the CronJob controller asks): :func:`parse_schedule` gives a
:class:`SpecSchedule` or :class:`EverySchedule` whose ``next(after)`` is the first
activation strictly after ``after``, computed as robfig/cron's ``Schedule.Next``:

* fields as bit sets (``*``/``?`` also set a "star" bit, cleared by a step > 1); the day
  matches when both day-of-month and day-of-week match if either was a star, else when
  either does (cron's classic OR rule: ``0 0 1 * 1`` is "the 1st, and every Monday");
* the search runs in the schedule's zone (``TZ=``/``CRON_TZ=`` prefix, else the
  process's local zone, as ``time.Local``) on wall-clock fields: month, then day,
  then hour, minute, second, each step normalising as Go's ``time.Date``/``AddDate``
  do, so a time in a DST gap moves forward and a repeated hour fires once; it gives up
  (``None``) five years on (a schedule like ``0 0 30 2 *`` never fires);
* ``@every <duration>`` is a constant delay from ``after`` (rounded down to whole
  seconds, at least one second); descriptors are their fixed bit sets.
"""

from __future__ import annotations

import math
import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from functools import lru_cache

from .timeutil import go_duration_seconds

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


def parse_schedule(spec: str) -> SpecSchedule | EverySchedule:
    """The schedule ``spec`` means (``cron.ParseStandard``); raises :class:`CronError` when it is invalid."""
    return _parse(spec)


def _parse(spec: str) -> SpecSchedule | EverySchedule:
    if not spec:
        raise CronError("empty spec string")
    zone: tzinfo | None = None  # None: the process's local zone (time.Local)
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space, eq = spec.find(" "), spec.find("=")
        name = spec[eq + 1:space] if space > eq else spec[eq + 1:]
        problem = time_zone_error(name)
        if problem is not None:
            raise CronError(f"provided bad location {name}: {problem}")
        zone = load_zone(name)
        spec = spec[space:].strip() if space > eq else ""
    if spec.startswith("@"):
        return _parse_descriptor(spec, zone)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    bits = [_field_bits(text, low, high, names) for text, (low, high, names) in zip(fields, _FIELDS)]
    return SpecSchedule(second=1, minute=bits[0], hour=bits[1], dom=bits[2], month=bits[3], dow=bits[4], zone=zone)


def _field_bits(text: str, low: int, high: int, names: dict[str, int] | None) -> int:
    bits = 0
    for expr in (part for part in text.split(",") if part):
        bits |= _check_range(expr, low, high, names)
    return bits


def _check_range(expr: str, low: int, high: int, names: dict[str, int] | None) -> int:
    """The bits ``expr`` sets (robfig's ``getRange``), or the parser's error."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = low, high, STAR_BIT
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
        if step > 1:
            extra = 0
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
    return _bits(start, end, step) | extra


def _bits(start: int, end: int, step: int = 1) -> int:
    return sum(1 << i for i in range(start, end + 1, step))


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


def _parse_descriptor(spec: str, zone: tzinfo | None) -> SpecSchedule | EverySchedule:
    if spec in _DESCRIPTORS:
        return _descriptor(spec, zone)
    every = "@every "
    if spec.startswith(every):
        text = spec[len(every):]
        problem = go_duration_error(text)
        if problem is not None:
            raise CronError(f"failed to parse duration {spec}: {problem}")
        return EverySchedule(_every_delay(text))
    raise CronError(f"unrecognized descriptor: {spec}")


def _descriptor(spec: str, zone: tzinfo | None) -> SpecSchedule:
    every_dom, every_month, every_dow = _bits(1, 31) | STAR_BIT, _bits(1, 12) | STAR_BIT, _bits(0, 6) | STAR_BIT
    every_hour = _bits(0, 23) | STAR_BIT
    dom, month, dow, hour = {
        "@yearly": (1 << 1, 1 << 1, every_dow, 1),
        "@annually": (1 << 1, 1 << 1, every_dow, 1),
        "@monthly": (1 << 1, every_month, every_dow, 1),
        "@weekly": (every_dom, every_month, 1 << 0, 1),
        "@daily": (every_dom, every_month, every_dow, 1),
        "@midnight": (every_dom, every_month, every_dow, 1),
        "@hourly": (every_dom, every_month, every_dow, every_hour),
    }[spec]
    return SpecSchedule(second=1, minute=1, hour=hour, dom=dom, month=month, dow=dow, zone=zone)


def _every_delay(text: str) -> int:
    """``cron.Every``'s delay in whole seconds: the duration rounded down, at least one second."""
    negative = text.startswith("-")
    seconds = go_duration_seconds(text.lstrip("+-"))
    if negative or seconds is None or seconds < 1:
        return 1
    return int(seconds)


# --------------------------------------------------------------------------- next activation

#: set in a field's bits when it was ``*`` or ``?`` (robfig's ``starBit``)
STAR_BIT = 1 << 63
#: how many years ahead ``next`` searches before it gives up
_YEAR_LIMIT = 5
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def load_zone(name: str) -> tzinfo:
    """``time.LoadLocation``: ``""`` and ``UTC`` are UTC, ``Local`` the process's zone, else IANA's."""
    if name in ("", "UTC"):
        return timezone.utc
    if name == "Local":
        return local_zone()
    return zoneinfo.ZoneInfo(name)


@lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """The process's zone, as Go's ``time.Local``: ``$TZ``, else ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ")
    if name is not None:
        name = name.lstrip(":")
        try:
            return zoneinfo.ZoneInfo(name) if name not in ("", "UTC", "Local") else timezone.utc
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            return timezone.utc
    try:
        with open("/etc/localtime", "rb") as file:
            return zoneinfo.ZoneInfo.from_file(file, key="Local")
    except (OSError, ValueError):
        return timezone.utc


@dataclass(frozen=True)
class EverySchedule:
    """``@every <duration>``: activations ``delay`` seconds apart, counted from the time asked about."""

    delay: int

    def next(self, after: datetime) -> datetime | None:
        whole = math.floor(after.timestamp())
        return datetime.fromtimestamp(whole + self.delay, after.tzinfo or timezone.utc)


@dataclass(frozen=True)
class SpecSchedule:
    """A field schedule (robfig's ``SpecSchedule``): one bit per allowed value of each field."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    #: the zone the fields are read in (None: the process's local zone)
    zone: tzinfo | None = None

    def next(self, after: datetime) -> datetime | None:
        """The first activation strictly after ``after`` (in ``after``'s zone), or None within five years."""
        zone = self.zone if self.zone is not None else local_zone()
        found = _next(self, math.floor(after.timestamp()) + 1, zone)
        return None if found is None else datetime.fromtimestamp(found, after.tzinfo or timezone.utc)

    def day_matches(self, moment: datetime) -> bool:
        dom_match = (1 << moment.day) & self.dom != 0
        dow_match = (1 << ((moment.weekday() + 1) % 7)) & self.dow != 0  # Go's Weekday: Sunday is 0
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match


def _wall(ts: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, zone)


def _offset(ts: int, zone: tzinfo) -> int:
    offset = datetime.fromtimestamp(ts, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, zone: tzinfo) -> int:
    """Go's ``time.Date``: out-of-range fields normalised, a wall time in a gap or overlap resolved as Go does."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    wall = days * 86400 + hour * 3600 + minute * 60 + second
    guess = _offset(wall, zone)
    utc = wall - guess
    actual = _offset(utc, zone)
    return utc if actual == guess else wall - actual


def _add_date(ts: int, zone: tzinfo, months: int = 0, days: int = 0) -> int:
    w = _wall(ts, zone)
    return _go_date(w.year, w.month + months, w.day + days, w.hour, w.minute, w.second, zone)


def _next(s: SpecSchedule, t: int, zone: tzinfo) -> int | None:
    """robfig's ``SpecSchedule.Next`` on whole seconds, from ``t`` (already the upcoming second)."""
    added = False
    year_limit = _wall(t, zone).year + _YEAR_LIMIT
    while True:  # each pass restarts the search from the month field (robfig's WRAP)
        w = _wall(t, zone)
        if w.year > year_limit:
            return None
        wrapped = False
        while not (1 << w.month) & s.month:
            if not added:
                added = True
                t = _go_date(w.year, w.month, 1, 0, 0, 0, zone)
            t = _add_date(t, zone, months=1)
            w = _wall(t, zone)
            if w.month == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while not s.day_matches(w):
            if not added:
                added = True
                t = _go_date(w.year, w.month, w.day, 0, 0, 0, zone)
            t = _add_date(t, zone, days=1)
            w = _wall(t, zone)
            if w.hour != 0:  # midnight moved by DST: back onto the day's start
                t += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                w = _wall(t, zone)
            if w.day == 1:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << w.hour) & s.hour:
            if not added:
                added = True
                t = _go_date(w.year, w.month, w.day, w.hour, 0, 0, zone)
            t += 3600
            w = _wall(t, zone)
            if w.hour == 0:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << w.minute) & s.minute:
            if not added:
                added = True
                t -= t % 60
            t += 60
            w = _wall(t, zone)
            if w.minute == 0:
                wrapped = True
                break
        if wrapped:
            continue
        while not (1 << w.second) & s.second:
            added = True
            t += 1
            w = _wall(t, zone)
            if w.second == 0:
                wrapped = True
                break
        if wrapped:
            continue
        return t


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
