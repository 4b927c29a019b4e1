"""Errors of the Kafka plumbing; each says whether retrying can help."""

from __future__ import annotations

from jointbus.schemas.errors import JointbusError


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


class KafkaAuthenticationError(StreamsError):
    """The broker refused the client's credentials (wrong password, unknown user): the same
    call will fail again until the credentials change (``auth_failed``)."""

    reason = "auth_failed"


class KafkaAuthorizationError(StreamsError):
    """The principal is known but an ACL denies it this topic, group or cluster operation
    (``not_authorized``)."""

    reason = "not_authorized"


class KafkaProtocolError(StreamsError):
    """Client and broker disagree on the security protocol, e.g. a PLAINTEXT client on a
    SASL listener (``security_protocol``)."""

    reason = "security_protocol"
