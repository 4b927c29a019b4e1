"""The deadline index: the monitor sees exactly the deadlines that passed, each at its
current due time, whatever moved or was met since it was first set."""

from __future__ import annotations

from datetime import timedelta

from jointbus.agents.dues import Dues
from tests.rules import NOW


def test_passed_deadlines_come_earliest_first_and_stay_until_met() -> None:
    """Only what passed by now, earliest first; an alert that failed is offered again."""
    dues = Dues()
    dues.set("clue/b", NOW - timedelta(minutes=1))
    dues.set("clue/a", NOW - timedelta(minutes=5))
    dues.set("clue/c", NOW + timedelta(minutes=1))
    assert [s for s, _ in dues.passed(NOW)] == ["clue/a", "clue/b"]
    assert [s for s, _ in dues.passed(NOW)] == ["clue/a", "clue/b"]
    dues.discard("clue/a")
    assert [s for s, _ in dues.passed(NOW)] == ["clue/b"]
    assert len(dues) == 2


def test_a_moved_deadline_counts_at_its_new_time_only() -> None:
    """A deadline pushed back (a reopened item's new date) no longer passes at the old one;
    one brought forward passes at the new one; the stale entries never surface."""
    dues = Dues()
    dues.set("rectification/x", NOW - timedelta(hours=1))
    dues.set("rectification/x", NOW + timedelta(days=2))
    dues.set("rectification/y", NOW + timedelta(days=2))
    dues.set("rectification/y", NOW - timedelta(seconds=1))
    assert dues.passed(NOW) == [("rectification/y", NOW - timedelta(seconds=1))]
    assert dues.passed(NOW + timedelta(days=3)) == [
        ("rectification/y", NOW - timedelta(seconds=1)),
        ("rectification/x", NOW + timedelta(days=2)),
    ]


def test_many_updates_keep_the_heap_small() -> None:
    """Stale entries are dropped when they outnumber the live ones (memory stays bounded)."""
    dues = Dues()
    for i in range(10_000):
        dues.set("clue/one", NOW + timedelta(seconds=i))
    assert len(dues) == 1
    assert len(dues._heap) < 200
    assert dues.passed(NOW + timedelta(days=1)) == [("clue/one", NOW + timedelta(seconds=9_999))]
