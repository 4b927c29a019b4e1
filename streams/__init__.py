"""Kafka plumbing of jointbus: settings, topic layout, the local broker, the agency SDK.

The public API is the agency SDK (``__all__``): ``Publisher`` signs, seals and sends to the
agency's outbox; ``Subscriber`` reads, verifies and opens its inbox and answers receipts.
"""

from jointbus.streams.errors import (
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    KafkaProtocolError,
    StreamsError,
)
from jointbus.streams.sdk import Delivery, Publisher, Subscriber, new_subject
from jointbus.streams.settings import Settings

__all__ = [
    "Delivery",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "KafkaProtocolError",
    "Publisher",
    "Settings",
    "StreamsError",
    "Subscriber",
    "new_subject",
]
