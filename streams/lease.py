"""One leader among several processes: a lease held through a Kafka consumer group.

Every candidate joins one consumer group subscribed to a single-partition topic it never
reads from. The member assigned partition 0 holds the lease; the others stand by. The
assignment is sticky: the holder says so in its join metadata and keeps the partition when a
standby joins or leaves. When the holder dies, the coordinator drops it once its session
expires and gives the partition to a standby; a holder that stops cleanly leaves the group,
and a standby takes over at once.

A lease says who *should* write; it cannot stop a holder that stalled (a long pause, a
network split) from writing after it lost. Whatever the holder writes must therefore be
fenced as well: the router writes through a transactional producer, and the new holder's
first act fences the old one (``agents/worker.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.protocol.group import HeartbeatRequest

from jointbus.streams.admin import admin_client
from jointbus.streams.errors import StreamsError

log = structlog.get_logger("jointbus.lease")

#: join metadata of the member that holds the lease, followed by ``:<term>``: when it
#: acquired the lease (ms since the epoch)
HOLDER = b"jointbus-lease-holder"
#: how long a dead holder keeps the lease (the broker's smallest session by default)
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000


def _assignor(lease: Lease) -> type[AbstractPartitionAssignor]:
    """The group's assignor: partition 0 to the member that holds it, else to one member
    (the first by member id); nothing to anyone else."""

    class LeaseAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "jointbus-lease"
        version = 0

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            claim = HOLDER + b":%d" % lease.term if lease.holding else b""
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), claim)

        @classmethod
        def assign(
            cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            return {
                member: ConsumerProtocolMemberAssignment(
                    cls.version, [(lease.topic, [0])] if member == chosen else [], b""
                )
                for chosen in [choose(members)]
                for member in members
            }

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            pass

    return LeaseAssignor


def choose(members: Mapping[str, ConsumerProtocolMemberMetadata]) -> str:
    """The member that gets the lease: the one holding it, else the first by member id.

    Two claim it after a stall: the old holder, which froze, lost its session and has not
    yet learnt it, and the one the group gave the lease to meanwhile. The later term wins:
    handing the lease back to the stalled one would stop both (the new one is fenced from
    the lease, the old one from Kafka by its successor's producer)."""
    claims = {m: _term(meta.user_data) for m, meta in members.items()}
    holders = sorted((-term, m) for m, term in claims.items() if term is not None)
    return holders[0][1] if holders else min(members)


def _term(claim: bytes) -> int | None:
    """The term of a holder's claim, or None for a member that does not claim the lease."""
    head, _, term = claim.partition(b":")
    return int(term) if head == HOLDER and term.isdigit() else None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, lease: Lease, consumer: AIOKafkaConsumer) -> None:
        self.lease = lease
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing: with eager rebalancing everything is revoked before every assignment;
        what counts is whether the new assignment still holds partition 0."""

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.consumer.pause(*assigned)  # the topic is a token, never read
        self.lease.assigned(holds(assigned), self.consumer._coordinator.generation)


class Lease:
    """A lease named by a consumer ``group`` on the single-partition ``topic``, held in a
    thread of its own so that it keeps its session whatever the caller's loop does.

    ``acquired`` is set once this process holds the lease; ``on_lost`` is called (in the
    lease's thread) if it ever stops holding it, and must stop the holder's work.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        on_lost: Callable[[], None],
        *,
        name: str = "",
        **kafka: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.name = name
        self.kafka = kafka
        self.on_lost = on_lost
        self.holding = False
        self.term = 0  # when this process acquired the lease (ms since the epoch)
        self.acquired = threading.Event()
        self._announced = False  # "standing by" logged
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._held_generation = -1  # the group generation whose assignment gave this process the lease

    def assigned(self, holds: bool, generation: int = -1) -> None:
        """The group's new assignment, of ``generation``: holds partition 0 or not."""
        self._held_generation = generation if holds else -1
        if holds and not self.holding:
            # when it was acquired, in ms since the epoch: a takeover waits out the old
            # holder's session (6 s), so any two terms are further apart than hosts' clocks
            # drift; a group generation would restart at 0 once the group was ever empty
            self.term = time.time_ns() // 1_000_000
            self.holding = True
            log.info("lease acquired: this process leads", group=self.group, name=self.name)
            self.acquired.set()
        elif not holds and self.holding:
            self.holding = False
            log.critical("lease lost: another process leads now", group=self.group, name=self.name)
            self.on_lost()
        elif not holds and not self._announced:
            log.info("lease held elsewhere: standing by", group=self.group, name=self.name)
            self._announced = True

    async def confirmed(self) -> bool | None:
        """Whether the group confirms, now, that this process holds the lease: a heartbeat
        of the current generation answered without error, asked of the coordinator from
        the lease's thread. False: it does not hold it; None: no answer (try again)."""
        if not self.holding:
            return False
        if self._loop is None:
            return None
        asked = asyncio.run_coroutine_threadsafe(self._heartbeat(), self._loop)
        try:
            async with asyncio.timeout(10.0):
                answered = await asyncio.wrap_future(asked)
        except Exception:
            answered = False
        if not self.holding:
            return False
        return True if answered else None

    async def _heartbeat(self) -> bool:
        """A heartbeat answered without error, of the very generation whose assignment gave
        this process the lease, with no rebalance under way before or after it: aiokafka
        takes a new generation from the JoinGroup answer, before SyncGroup says who holds
        what, and the coordinator answers heartbeats of that generation meanwhile."""
        consumer = self._consumer
        if consumer is None:
            return False
        group = consumer._coordinator  # aiokafka's group coordinator client: its member and generation

        def settled() -> bool:
            return (
                self.holding
                and group.generation == self._held_generation
                and not consumer._subscription.reassignment_in_progress
                and holds(consumer.assignment())
            )

        if not settled():
            return False
        generation = group.generation
        response = await group._send_req(HeartbeatRequest(group.group_id, generation, group.member_id))
        return bool(response.error_code == 0) and settled() and group.generation == generation

    def start(self) -> None:
        """Join the group in a background thread (returns at once)."""
        self._thread = threading.Thread(target=self._run_thread, name=f"lease-{self.group}", daemon=True)
        self._thread.start()

    def release(self, within: float = 10.0) -> None:
        """Leave the group (a standby takes over at once) and end the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(within)

    def _run_thread(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        while not self._stop.is_set():
            try:
                await self._hold()
            except Exception as exc:  # the broker away at start: keep trying, never hold by default
                log.warning("lease group not joined; retrying", group=self.group, error=repr(exc)[:200])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _hold(self) -> None:
        assert self._stop is not None
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=f"{self.group}-{self.name}" if self.name else self.group,
            enable_auto_commit=False,
            partition_assignment_strategy=(_assignor(self),),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            rebalance_timeout_ms=SESSION_TIMEOUT_MS * 2,
            **self.kafka,
        )
        consumer.subscribe([self.topic], listener=_Listener(self, consumer))
        try:
            await consumer.start()
            self._consumer = consumer
            while not self._stop.is_set():
                # polled so the group keeps us (max.poll.interval); partition 0 stays paused
                await consumer.getmany(timeout_ms=500)
        finally:
            await consumer.stop()  # leaves the group: a standby is assigned at once


def holds(assignment: Iterable[TopicPartition]) -> bool:
    """Whether an assignment holds the lease (partition 0)."""
    return any(tp.partition == 0 for tp in assignment)


@dataclass(frozen=True)
class Member:
    """One process in a lease group, as the group coordinator sees it."""

    name: str  # the name it joined with (a worker's instance id)
    host: str
    leads: bool


async def members(bootstrap: str, group: str, **kafka: Any) -> tuple[str, list[Member]]:
    """The lease group's state (``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead``) and
    its members, the holder first: what an operator asks when wondering who routes."""
    async with admin_client(bootstrap, **kafka) as admin:
        responses = await admin.describe_consumer_groups([group])
    state, found = "Dead", []
    for response in responses:
        for error_code, _, group_state, _, _, group_members, *_ in response.groups:
            if error_code:
                raise StreamsError(
                    f"the group {group} cannot be described (error {error_code})", reason="group_error"
                )
            state = group_state
            for _, client_id, host, _, assignment, *_ in group_members:
                partitions = (
                    ConsumerProtocolMemberAssignment.decode(assignment).partitions() if assignment else []
                )
                name = client_id.removeprefix(f"{group}-")
                found.append(Member(name, host.lstrip("/"), holds(partitions)))
    return state, sorted(found, key=lambda m: (not m.leads, m.name))
