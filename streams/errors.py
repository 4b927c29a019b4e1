"""Errors of the Kafka plumbing; each says whether retrying can help."""

from __future__ import annotations

from schemas.errors import JointbusError


class StreamsError(JointbusError):
    """A failure talking to, or running, Kafka."""


class BrokerError(StreamsError):
    """The local broker cannot be fetched, started, stopped or reached.

    Reasons: ``java_missing``, ``maven_missing``, ``fetch_failed``, ``port_taken``,
    ``start_failed``, ``not_running``, ``unreachable``.
    """


class ConfigError(StreamsError):
    """A setting is missing or wrong (``config``)."""

    reason = "config"


class KafkaUnavailableError(StreamsError):
    """The cluster did not answer in time; the same call may succeed later."""

    reason = "kafka_unavailable"
    retriable = True
