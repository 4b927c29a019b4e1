"""Reading a single-partition log topic (audit, checkpoints) from an offset to its end.

The consumer assigns partition 0 itself (no group, nothing committed). Its start is bounded
and its topic's metadata asked for first, so a wrong password or a topic the principal may
not read fails at once with a typed error instead of waiting forever for records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from jointbus.streams.clients import readable_partitions, start_client
from jointbus.streams.errors import StreamsError


async def _assigned(bootstrap: str, topic: str, kafka: dict[str, Any], **options: Any) -> AIOKafkaConsumer:
    """A started consumer assigned partition 0 of ``topic``; closed again if that fails."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **options, **kafka)
    await start_client(consumer, bootstrap, kafka)
    try:
        if 0 not in await readable_partitions(consumer, topic):
            raise StreamsError(f"the topic {topic} has no partition 0", reason="unknown_topic")
        consumer.assign([TopicPartition(topic, 0)])
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def read_topic(
    bootstrap: str, topic: str, start: int = 0, *, follow: bool = False, **kafka: Any
) -> AsyncIterator[tuple[int, bytes | None, bytes]]:
    """(offset, key, value) of partition 0 of ``topic`` from ``start`` to the end as it was
    when reading began (or forever, with ``follow``). No consumer group: nothing is committed.
    """
    consumer = await _assigned(
        bootstrap,
        topic,
        kafka,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        while follow or await consumer.position(tp) < end:
            # the position, not the last record's offset: a transaction's commit marker, or
            # records it aborted, take offsets a committed reader never sees
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
            for record in batch.get(tp, []):
                yield record.offset, record.key, record.value
                if not follow and record.offset + 1 >= end:
                    return
    finally:
        await consumer.stop()


async def end_offset(bootstrap: str, topic: str, **kafka: Any) -> int:
    """The next offset of partition 0 of ``topic`` a committed reader reaches (its last
    stable offset: an open transaction's records are not counted yet)."""
    consumer = await _assigned(bootstrap, topic, kafka, isolation_level="read_committed")
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def last_value(bootstrap: str, topic: str, **kafka: Any) -> bytes | None:
    """The value of the last committed record of partition 0 of ``topic`` (None: empty)."""
    consumer = await _assigned(bootstrap, topic, kafka, isolation_level="read_committed")
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        back = 64
        while True:  # the last offsets may be commit markers: look further back until a record
            consumer.seek(tp, max(0, end - back))
            last = None
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.offset < end:
                        last = record.value
            if last is not None or end - back <= 0:
                return last
            back *= 4
    finally:
        await consumer.stop()


async def read_texts(bootstrap: str, topic: str, **kafka: Any) -> list[str]:
    """Every value of partition 0 of ``topic`` as text (no value: passed over; bytes that
    are not UTF-8: replaced), for topics of notes anyone allowed to write may fill."""
    return [
        value.decode("utf-8", errors="replace")
        async for _, _, value in read_topic(bootstrap, topic, **kafka)
        if value
    ]
