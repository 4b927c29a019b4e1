"""Who gets the router lease when the group assigns it (pure: the assignor's choice)."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from jointbus.streams.lease import HOLDER, choose


def meta(claim: bytes = b"") -> ConsumerProtocolMemberMetadata:
    return ConsumerProtocolMemberMetadata(0, ["jointbus.audit"], claim)


def test_the_holder_keeps_the_lease_when_a_standby_joins() -> None:
    """A standby joining (or restarting) never takes the lease from a live holder."""
    members = {"a-member": meta(), "z-member": meta(HOLDER + b":3"), "b-member": meta()}
    assert choose(members) == "z-member"


def test_stalled_holder_does_not_win_the_lease_back() -> None:
    """A zombie leader: frozen, it lost its session and the lease went to another member
    (a later term); when it wakes it still claims the lease. The later term wins, so the
    one routing now keeps routing."""
    members = {"a-stalled": meta(HOLDER + b":2"), "b-current": meta(HOLDER + b":5")}
    assert choose(members) == "b-current"


def test_without_a_holder_one_member_is_chosen_and_a_forged_claim_is_no_claim() -> None:
    """No claim: the first member id. A claim without a term does not count as one."""
    members = {"m-2": meta(), "m-1": meta(HOLDER + b":x"), "m-3": meta(HOLDER)}
    assert choose(members) == "m-1"
