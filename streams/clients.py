"""Starting Kafka clients: bounded in time, and every failure turned into a typed error.

aiokafka reports a refused password, a PLAINTEXT client on a SASL listener and a broker
that is down alike, as a retriable ``KafkaConnectionError: Unable to bootstrap``. When a
start fails, :func:`diagnose` opens one connection itself to tell them apart, so a person
reads what is wrong and a program knows whether trying again can help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnknownTopicOrPartitionError,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.admin import SaslHandShakeRequest

from jointbus.streams.errors import (
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaProtocolError,
    KafkaUnavailableError,
    StreamsError,
)

#: how long a client may take to connect (and authenticate) before we say why it cannot
START_TIMEOUT = 20.0
#: how long the diagnosing connection may take
PROBE_TIMEOUT = 5.0
SCRAM = "SCRAM-SHA-512"
_AUTHORIZATION = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)


class _Diagnosed(logging.Filter):
    """Drops aiokafka's own lines about a failing start or a refused topic while we are
    diagnosing them: the typed error says it once, in one line."""

    NOISE = (
        'Unable connect to "%s:%s": %s',
        'Unable to request metadata from "%s:%s": %s',
        "Topic %s is not authorized for this client",
    )

    def __init__(self) -> None:
        super().__init__()
        self.active = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return self.active == 0 or record.msg not in self.NOISE


_DIAGNOSED = _Diagnosed()
for _name in ("aiokafka", "aiokafka.cluster"):
    logging.getLogger(_name).addFilter(_DIAGNOSED)


@contextlib.contextmanager
def _diagnosing() -> Iterator[None]:
    _DIAGNOSED.active += 1
    try:
        yield
    finally:
        _DIAGNOSED.active -= 1


async def start_client(
    client: Any, bootstrap: str, kafka: Mapping[str, Any], *, within: float = START_TIMEOUT
) -> None:
    """Start an aiokafka consumer, producer or admin client within ``within`` seconds.

    On failure the client is closed (no "Unclosed AIOKafka..." warnings) and a typed
    :class:`StreamsError` says why: ``auth_failed``, ``security_protocol``,
    ``not_authorized`` or ``kafka_unavailable`` (the only retriable one).
    """
    with _diagnosing():
        try:
            async with asyncio.timeout(within):
                await client.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await close_client(client)
            raise await diagnose(bootstrap, kafka, exc) from exc


async def close_client(client: Any) -> None:
    """Stop (or close, for an admin client) ``client``, ignoring a failure to do so."""
    stop = getattr(client, "stop", None) or client.close
    with contextlib.suppress(Exception):
        await stop()


async def diagnose(bootstrap: str, kafka: Mapping[str, Any], failure: BaseException) -> StreamsError:
    """Why a client with ``kafka`` settings could not use ``bootstrap``, as a typed error."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    where = f"{host}:{port}"
    protocol = kafka.get("security_protocol", "PLAINTEXT")
    user = kafka.get("sasl_plain_username")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            conn = await create_conn(
                host,
                int(port),
                request_timeout_ms=int(PROBE_TIMEOUT * 1000),
                security_protocol=protocol,
                sasl_mechanism=kafka.get("sasl_mechanism", SCRAM),
                sasl_plain_username=user,
                sasl_plain_password=kafka.get("sasl_plain_password"),
            )
            try:
                if protocol == "PLAINTEXT" and await _listener_wants_sasl(conn):
                    return KafkaProtocolError(
                        f"the broker at {where} expects SASL_PLAINTEXT (SASL/{SCRAM}), but this client "
                        "speaks PLAINTEXT: set JOINTBUS_SECURITY_PROTOCOL=SASL_PLAINTEXT and put the "
                        "principal's credentials in <keystore>/kafka/"
                    )
            finally:
                conn.close()
    except SaslAuthenticationFailed:
        return KafkaAuthenticationError(
            f"the broker at {where} refused the credentials of {user!r}: wrong password or unknown "
            "user (retrying will not help; check <keystore>/kafka/)"
        )
    except (IllegalSaslStateError, UnsupportedSaslMechanismError) as exc:
        return KafkaProtocolError(
            f"the broker at {where} does not accept {protocol} with {SCRAM} ({type(exc).__name__}); "
            "if it is a PLAINTEXT listener, set JOINTBUS_SECURITY_PROTOCOL=PLAINTEXT"
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        return KafkaUnavailableError(
            f"no Kafka broker answers at {where} ({type(exc).__name__}: {exc}); is it running?"
        )
    return classify(failure, where)


async def _listener_wants_sasl(conn: Any) -> bool:
    """True when the listener behind a PLAINTEXT connection answers a SASL handshake as a
    SASL listener does (a PLAINTEXT listener answers ILLEGAL_SASL_STATE)."""
    response = await conn.send(SaslHandShakeRequest(SCRAM))
    return bool(response.error_code != IllegalSaslStateError.errno)


def classify(exc: BaseException, where: str | None = None) -> StreamsError:
    """A typed error for a Kafka failure that needs no further probing."""
    if isinstance(exc, StreamsError):
        return exc
    kafka = f"Kafka at {where}" if where else "Kafka"
    text = str(exc) if type(exc).__name__ in str(exc) else f"{type(exc).__name__} {exc}".strip()
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaAuthenticationError(f"{kafka} refused the credentials: {text}")
    if isinstance(exc, _AUTHORIZATION):
        return KafkaAuthorizationError(f"{kafka} refused: {text}")
    if isinstance(exc, TimeoutError) or (isinstance(exc, KafkaError) and exc.retriable):
        return KafkaUnavailableError(f"{kafka} did not answer in time: {text}")
    return StreamsError(f"{kafka}: {text}", reason="kafka_error")


async def readable_partitions(consumer: Any, topic: str, *, within: float = START_TIMEOUT) -> set[int]:
    """The partitions of ``topic``, for a consumer that assigns partitions itself (no group).

    Assigned by hand, a topic the principal may not read is never reported: the fetches just
    come back empty, forever. Asking for the topic's metadata first turns the refusal into
    :class:`KafkaAuthorizationError` at once (and a missing topic into ``unknown_topic``).
    """
    try:
        with _diagnosing():
            async with asyncio.timeout(within):
                return set(await consumer._client._wait_on_metadata(topic))
    except TopicAuthorizationFailedError:
        raise KafkaAuthorizationError(
            f"Kafka refuses this principal the topic {topic} (no ACL allows reading it)"
        ) from None
    except UnknownTopicOrPartitionError:
        raise StreamsError(f"the topic {topic} does not exist", reason="unknown_topic") from None
    except TimeoutError:
        raise KafkaUnavailableError(
            f"no metadata for the topic {topic} within {within:.0f}s (does it exist?)"
        ) from None
