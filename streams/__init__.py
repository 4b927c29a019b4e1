"""Kafka plumbing of jointbus: settings, topic layout, the local broker, the agency SDK."""
