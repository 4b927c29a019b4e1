"""Deadline dates: China Standard Time everywhere, whatever zone a machine runs in.

A deadline is a calendar date in China (UTC+8, no daylight saving); it passes at the end of
that day, 24:00 +08:00. Router, auditors and tests compute it the same way from the same
instant, so a suite run at any hour in any zone agrees with the bus.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from jointbus.schemas.ids import parse_time

CHINA = timedelta(hours=8)


def china_date(moment: datetime) -> date:
    """The calendar date in China Standard Time at ``moment``."""
    return (moment.astimezone(UTC) + CHINA).date()


def deadline_moment(day: date) -> datetime:
    """The instant a deadline date has passed (end of that day, UTC+8)."""
    return datetime.combine(day, time(0), tzinfo=UTC) + (timedelta(days=1) - CHINA)


def still_ahead(deadline: date, event_time: str) -> bool:
    """True when a deadline date has not yet passed at the event's time."""
    return deadline_moment(deadline) > parse_time(event_time)
