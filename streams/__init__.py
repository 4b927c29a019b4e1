"""Kafka plumbing of jointbus: settings, topic layout, the local broker, the agency SDK.

The public API is the agency SDK (``__all__``): ``Publisher`` signs, seals and sends to the
agency's outbox; ``Subscriber`` reads, verifies and opens its inbox and answers receipts.
"""

from jointbus.schemas.lazy import lazy_exports

#: where each public name lives, imported on first use: a command that needs none of them
#: starts faster
_HOME = {
    "Delivery": "jointbus.streams.sdk",
    "KafkaAuthenticationError": "jointbus.streams.errors",
    "KafkaAuthorizationError": "jointbus.streams.errors",
    "KafkaProtocolError": "jointbus.streams.errors",
    "Publisher": "jointbus.streams.sdk",
    "Settings": "jointbus.streams.settings",
    "StreamsError": "jointbus.streams.errors",
    "Subscriber": "jointbus.streams.sdk",
    "new_subject": "jointbus.streams.sdk",
}

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


__getattr__ = lazy_exports(__name__, _HOME)
