"""The auditors' and coordinators' console: a read-only web application over the audit log.

Everything it shows is folded from ``jointbus.audit`` as the ``auditor`` principal, with the
same functions as ``jointbus status`` / ``audit replay`` / ``audit verify`` / ``audit prove``;
it holds no private key and never shows an event's payload (docs/console.md).
"""
