"""The agency gateway: one per agency, at its edge, holding its keys and Kafka credential.

Internal systems speak plain HTTP/JSON to it (``app``); it signs, seals, publishes, reads
the agency's inbox into a durable local store (``store``), sends receipts when the internal
system acknowledges, and pushes deliveries to webhooks (``webhook``)."""
