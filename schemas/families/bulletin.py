"""协作通报 — a free-text coordination bulletin from one agency to others (arrangements for a
joint action, a reminder, a policy reading), which its author may withdraw.

This kind was added as one module: its payloads, state, transitions, figures and examples
are all here; the catalog, the rules, the projections, the registry's default rights, the
SDK and the tests' samples pick it up from ``KIND``.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import AggregateState, Context, Fact, Kind, Payload, Tally, event, evolve, refuse
from jointbus.schemas.fields import Name, Text


class BulletinPosted(Payload):
    """A coordination bulletin to the recipients, optionally asking for replies by a date."""

    title: Name
    body: Text
    category: Literal["arrangement", "reminder", "information"] = "information"
    reply_by: date | None = None


class BulletinWithdrawn(Payload):
    """The author withdraws a bulletin (it was wrong or is moot), saying why."""

    reason: Text


class BulletinState(AggregateState):
    """A posted bulletin: its author and audience."""

    kind: str = "bulletin"
    author: str
    audience: tuple[str, ...]


def posted(state: BulletinState | None, env: Envelope, _: BulletinPosted, __: Context) -> BulletinState:
    if state is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.subject} was already posted")
    return BulletinState(status="posted", author=env.sender, audience=tuple(env.recipients))


def withdrawn(state: BulletinState | None, env: Envelope, _: BulletinWithdrawn, __: Context) -> BulletinState:
    if not isinstance(state, BulletinState):
        refuse(Reason.BAD_TRANSITION, f"{env.subject} is not a posted bulletin")
    if env.sender != state.author:
        refuse(Reason.NOT_AUTHORIZED, f"only {state.author} withdraws {env.subject}")
    if not set(state.audience) <= set(env.recipients):
        refuse(Reason.NOT_AUTHORIZED, "a withdrawal reaches everyone the bulletin reached")
    if state.status != "posted":
        refuse(Reason.BAD_TRANSITION, f"{env.subject} is already {state.status}")
    return evolve(state, status="withdrawn")


def project(tally: Tally, fact: Fact) -> None:
    """Bulletins posted, per author (a withdrawal takes nothing back: it was sent)."""
    if fact.family == "bulletin.posted":
        tally.count(fact.sender, "bulletins_posted")
        tally.total("bulletins_posted")


KIND = Kind(
    name="bulletin",
    order=90,
    events=(
        event(
            "bulletin.posted",
            1,
            BulletinPosted,
            {
                "title": "关于开展濑溪河跨界断面联合巡查的安排",
                "body": "请各单位于12月5日前报送参加联合巡查人员名单。",
                "category": "arrangement",
                "reply_by": "2026-12-05",
            },
        ),
        event("bulletin.withdrawn", 1, BulletinWithdrawn, {"reason": "巡查时间调整，另行通知"}),
    ),
    state=BulletinState,
    transitions={"bulletin.posted": posted, "bulletin.withdrawn": withdrawn},
    columns=("bulletins_posted",),
    project=project,
)
