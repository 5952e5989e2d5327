"""Next activations of cron schedules, as robfig/cron's ``Schedule.Next`` gives them (pure, no server)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from podlife.machinery import cron

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *,
       tz: timezone | ZoneInfo = UTC) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def upcoming(spec: str, after: datetime, count: int = 1) -> list[datetime | None]:
    schedule = cron.parse_schedule(spec)
    found: list[datetime | None] = []
    moment: datetime | None = after
    for _ in range(count):
        assert moment is not None
        moment = schedule.next(moment)
        found.append(moment)
    return found


def test_every_five_minutes() -> None:
    assert upcoming("*/5 * * * *", at(2026, 1, 1, 10, 3, 12), 3) == [
        at(2026, 1, 1, 10, 5), at(2026, 1, 1, 10, 10), at(2026, 1, 1, 10, 15)]


def test_next_is_strictly_after() -> None:
    assert upcoming("*/5 * * * *", at(2026, 1, 1, 10, 5)) == [at(2026, 1, 1, 10, 10)]
    assert upcoming("*/5 * * * *", datetime(2026, 1, 1, 10, 4, 59, 999999, tzinfo=UTC)) == [at(2026, 1, 1, 10, 5)]


def test_weekdays_at_nine_in_a_zone_across_dst() -> None:
    # Friday 6 March 2026 is EST (-5); DST starts Sunday 8 March: Monday 9 March 09:00 is EDT (-4)
    friday = at(2026, 3, 6, 9, 30, tz=NEW_YORK)
    assert upcoming("CRON_TZ=America/New_York 0 9 * * 1-5", friday, 2) == [
        at(2026, 3, 9, 13, 0).astimezone(NEW_YORK), at(2026, 3, 10, 13, 0).astimezone(NEW_YORK)]
    before = at(2026, 3, 6, 8, 0, tz=NEW_YORK)
    assert upcoming("TZ=America/New_York 0 9 * * 1-5", before) == [at(2026, 3, 6, 14, 0).astimezone(NEW_YORK)]
    # the answer is in the zone of the time asked about
    (result,) = upcoming("TZ=America/New_York 0 9 * * 1-5", at(2026, 3, 6, 15, 0))
    assert result == at(2026, 3, 9, 13, 0) and result is not None and result.tzinfo is UTC


def test_a_time_in_the_dst_gap_is_skipped_and_a_repeated_hour_fires_twice() -> None:
    # 02:30 does not exist in New York on 8 March 2026: robfig moves on to the next day
    assert upcoming("CRON_TZ=America/New_York 30 2 * * *", at(2026, 3, 7, 12, 0), 2) == [
        at(2026, 3, 9, 6, 30), at(2026, 3, 10, 6, 30)]
    # 01:30 happens twice on 1 November 2026 (EDT, then EST): robfig's wall-clock search finds both
    assert upcoming("CRON_TZ=America/New_York 30 1 * * *", at(2026, 10, 31, 12, 0), 3) == [
        at(2026, 11, 1, 5, 30), at(2026, 11, 1, 6, 30), at(2026, 11, 2, 6, 30)]


def test_descriptors() -> None:
    start = at(2026, 5, 1, 10, 3, 12)  # a Friday
    assert upcoming("@hourly", start, 2) == [at(2026, 5, 1, 11), at(2026, 5, 1, 12)]
    assert upcoming("@daily", start) == [at(2026, 5, 2)]
    assert upcoming("@midnight", start) == [at(2026, 5, 2)]
    assert upcoming("@weekly", start) == [at(2026, 5, 3)]
    assert upcoming("@monthly", start) == [at(2026, 6, 1)]
    assert upcoming("@yearly", start) == [at(2027, 1, 1)]
    assert upcoming("@annually", start) == [at(2027, 1, 1)]


def test_every_is_a_constant_delay_in_whole_seconds() -> None:
    assert upcoming("@every 90s", at(2026, 1, 1, 10, 3, 12), 2) == [at(2026, 1, 1, 10, 4, 42), at(2026, 1, 1, 10, 6, 12)]
    # the fraction of the second asked about is dropped, and so is the delay's
    assert upcoming("@every 1m30.5s", datetime(2026, 1, 1, 10, 3, 12, 700000, tzinfo=UTC)) == [at(2026, 1, 1, 10, 4, 42)]
    assert upcoming("@every 100ms", at(2026, 1, 1)) == [at(2026, 1, 1, 0, 0, 1)]


def test_day_of_month_and_day_of_week() -> None:
    friday = at(2026, 5, 1)
    # neither a star: either matches (the 1st, or a Monday)
    assert upcoming("0 0 1 * 1", friday) == [at(2026, 5, 4)]
    # a step > 1 clears the star: odd days or Mondays
    assert upcoming("0 0 */2 * 1", friday) == [at(2026, 5, 3)]
    # a star day of month: only Mondays
    assert upcoming("0 0 * * mon", friday) == [at(2026, 5, 4)]
    assert upcoming("15 10 * jan-mar sun", friday) == [at(2027, 1, 3, 10, 15)]


def test_impossible_date_never_fires() -> None:
    assert upcoming("0 0 30 2 *", at(2026, 1, 1)) == [None]


def test_ranges_steps_and_lists() -> None:
    assert upcoming("0,30 8-10/2 * * *", at(2026, 1, 1, 8, 10), 4) == [
        at(2026, 1, 1, 8, 30), at(2026, 1, 1, 10), at(2026, 1, 1, 10, 30), at(2026, 1, 2, 8)]
    assert upcoming("5/20 * * * *", at(2026, 1, 1, 0, 6), 3) == [
        at(2026, 1, 1, 0, 25), at(2026, 1, 1, 0, 45), at(2026, 1, 1, 1, 5)]


def test_without_zone_the_local_zone_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    cron.local_zone.cache_clear()
    try:
        assert upcoming("0 9 * * *", at(2025, 12, 31, 20, 0)) == [at(2026, 1, 1, 0, 0)]  # 09:00 JST is 00:00 UTC
    finally:
        monkeypatch.undo()
        cron.local_zone.cache_clear()


@pytest.mark.parametrize("spec", ["* * *", "60 * * * *", "@every x", "TZ=Nowhere/Land * * * * *", "@often"])
def test_invalid_schedules_raise_with_the_validation_text(spec: str) -> None:
    with pytest.raises(cron.CronError) as err:
        cron.parse_schedule(spec)
    assert str(err.value) == cron.schedule_error(spec)
