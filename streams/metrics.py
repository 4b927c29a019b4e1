"""What the bus's processes expose to Prometheus (``--metrics-port`` /
``JOINTBUS_METRICS_PORT``): one place that names every metric, so the README, the Grafana
dashboard (``docker/grafana-dashboard.json``) and the code agree.

The worker counts decisions and times them, watches its outbox partitions' lag and the
deadlines; the audit agent its leaves, lag and checkpoint age; witnesses what they cosigned
and refused. Counters only go up; gauges are the present value.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.registry import Collector

log = structlog.get_logger("jointbus.metrics")

DECISIONS = Counter(
    "jointbus_decisions_total",
    "Router decisions, by event type (family), decision and reason code",
    ["family", "decision", "reason"],
    registry=None,
)
ROUTING_SECONDS = Histogram(
    "jointbus_routing_seconds",
    "From an outbox record's append by the broker to the router's decision on it",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    registry=None,
)
ROUTER_LEADS = Gauge(
    "jointbus_router_leads",
    "1 while this worker holds the router lease and routes, 0 on standby",
    registry=None,
)
OUTBOX_LAG = Gauge(
    "jointbus_outbox_lag_records",
    "Records of an outbox partition not yet decided by this worker",
    ["topic", "partition"],
    registry=None,
)
DEADLINES_OPEN = Gauge("jointbus_deadlines_open", "Aggregates with a deadline still to be met", registry=None)
OVERDUE_OPEN = Gauge(
    "jointbus_overdue_open", "Items alerted overdue whose deadline is still unmet", registry=None
)
OVERDUE_ALERTS = Counter("jointbus_overdue_alerts_total", "Signed overdue alerts written", registry=None)
PRODUCE_ERRORS = Counter(
    "jointbus_produce_errors_total",
    "Writes to Kafka that failed (the record is routed again)",
    ["component"],
    registry=None,
)
AUDIT_LEAVES = Gauge(
    "jointbus_audit_leaves", "Leaves of the audit log's Merkle tree (its size)", registry=None
)
AUDIT_LAG = Gauge("jointbus_audit_lag_records", "Audit topic records not yet in the tree", registry=None)
CHECKPOINTS = Counter("jointbus_checkpoints_total", "Checkpoints signed by this audit agent", registry=None)
CHECKPOINT_AGE = Gauge(
    "jointbus_checkpoint_age_seconds", "Seconds since the last checkpoint was signed", registry=None
)
WITNESS_SIZE = Gauge(
    "jointbus_witness_cosigned_size",
    "Size of the last checkpoint a witness cosigned",
    ["agency"],
    registry=None,
)
WITNESS_REFUSALS = Counter(
    "jointbus_witness_refusals_total",
    "Checkpoints a witness refused, by reason",
    ["agency", "reason"],
    registry=None,
)

_last_checkpoint = 0.0


def checkpoint_signed() -> None:
    """Count a checkpoint and restart its age."""
    global _last_checkpoint
    _last_checkpoint = time.time()
    CHECKPOINTS.inc()


CHECKPOINT_AGE.set_function(lambda: time.time() - _last_checkpoint if _last_checkpoint else 0.0)


#: what each process exposes: its own metrics only (an audit agent showing
#: ``jointbus_router_leads 0`` would set off a "no router leads" alert), and the
#: process's own CPU, memory and garbage collection
COMPONENTS: dict[str, tuple[Collector, ...]] = {
    "worker": (
        DECISIONS,
        ROUTING_SECONDS,
        ROUTER_LEADS,
        OUTBOX_LAG,
        DEADLINES_OPEN,
        OVERDUE_OPEN,
        OVERDUE_ALERTS,
        PRODUCE_ERRORS,
    ),
    "audit": (AUDIT_LEAVES, AUDIT_LAG, CHECKPOINTS, CHECKPOINT_AGE),
    "witness": (WITNESS_SIZE, WITNESS_REFUSALS),
}


def registry_of(component: str) -> CollectorRegistry:
    """The metrics ``component`` (``worker``, ``audit``, ``witness``) exposes."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (*COMPONENTS[component], PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def serve(port: int | None, component: str, host: str = "127.0.0.1") -> None:
    """Expose ``component``'s metrics on ``host:port`` (text format); no-op when ``port`` is
    None. A port already taken is logged, not fatal: the bus works without its metrics."""
    if port is None:
        return
    try:
        start_http_server(port, addr=host, registry=registry_of(component))
    except OSError as exc:
        log.error("metrics endpoint not started", component=component, port=port, error=str(exc))
        return
    log.info("metrics endpoint listening", component=component, port=port)
