"""A local three-node KRaft cluster on loopback: the production layout (every node broker
and controller, replication 3, ``min.insync.replicas`` 2, ``acks=all``) for tests and for
operators who want to watch the bus survive a node's death.

``data_dir/node-<n>`` holds node *n*: its own ``LocalBroker`` with a ``ClusterRole``. The
nodes share a cluster id, the controller quorum and (secured) one controller secret; the
cluster remembers its ports in ``cluster.json`` so a node brought back rejoins as itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jointbus.streams.broker import (
    READY_TIMEOUT,
    ClusterRole,
    LocalBroker,
    _random_cluster_id,
    free_port,
    probe,
)
from jointbus.streams.errors import BrokerError
from jointbus.streams.keystore import private_dir
from jointbus.streams.security import Credentials


@dataclass
class ClusterLayout:
    """The ports and id a cluster keeps for its life."""

    cluster_id: str
    ports: list[int]
    controller_ports: list[int]


class LocalCluster:
    """``nodes`` local KRaft nodes in ``data_dir``, client ports ``ports`` (chosen when absent)."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 3,
        ports: list[int] | None = None,
        heap: str = "512m",
        scram_users: dict[str, Credentials] | None = None,
    ) -> None:
        if nodes < 3:
            raise BrokerError(
                "a cluster has at least three nodes (replication 3, two in sync)", reason="config"
            )
        self.data_dir = Path(data_dir).resolve()
        private_dir(self.data_dir)
        self.layout = self._layout(nodes, ports)
        self.heap = heap
        self.scram_users = scram_users
        voters = ",".join(f"{n + 1}@127.0.0.1:{port}" for n, port in enumerate(self.layout.controller_ports))
        self.nodes = [
            LocalBroker(
                self.data_dir / f"node-{n + 1}",
                port,
                heap=heap,
                scram_users=scram_users,
                role=ClusterRole(
                    node_id=n + 1,
                    controller_port=self.layout.controller_ports[n],
                    voters=voters,
                    cluster_id=self.layout.cluster_id,
                    controller_secret=self.data_dir / "controller.secret",
                ),
            )
            for n, port in enumerate(self.layout.ports)
        ]

    def _layout(self, nodes: int, ports: list[int] | None) -> ClusterLayout:
        path = self.data_dir / "cluster.json"
        if path.exists():
            layout = ClusterLayout(**json.loads(path.read_text()))
            if len(layout.ports) != nodes or (ports is not None and layout.ports[: len(ports)] != ports):
                raise BrokerError(f"{self.data_dir} holds another cluster: {layout.ports}", reason="config")
            return layout
        chosen = list(ports) if ports is not None else []
        taken = set(chosen)
        while len(chosen) < nodes:
            port = free_port()
            if port not in taken:
                chosen.append(port)
                taken.add(port)
        controllers: list[int] = []
        while len(controllers) < nodes:
            port = free_port()
            if port not in taken:
                controllers.append(port)
                taken.add(port)
        layout = ClusterLayout(_random_cluster_id(), chosen, controllers)
        path.write_text(json.dumps(layout.__dict__))
        return layout

    @property
    def bootstrap(self) -> str:
        """Every node's client address: a client starts from whichever answers."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def admin_kwargs(self) -> dict[str, Any]:
        return self.nodes[0].admin_kwargs

    def start(self, timeout: float = READY_TIMEOUT * 2) -> None:
        """Start every node that is not running, then wait until each serves."""
        for node in self.nodes:
            if node.pid() is None:
                node.start(wait=False)
        self.wait(timeout)

    def wait(self, timeout: float = READY_TIMEOUT * 2) -> None:
        """Wait until every running node answers metadata requests."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            pending = [
                n for n in pending if not asyncio.run(probe(n.bootstrap, wait=3.0, **self.admin_kwargs))
            ]
            if not pending:
                return
            if time.monotonic() > deadline:
                late = [n.role.node_id for n in pending if n.role]
                raise BrokerError(
                    f"nodes {late} did not serve within {timeout:.0f}s: " + pending[0]._log_tail(),
                    reason="start_failed",
                )
            time.sleep(0.2)

    def _serves(self, node: LocalBroker) -> bool:
        return asyncio.run(probe(node.bootstrap, wait=3.0, **self.admin_kwargs))

    def node(self, node_id: int) -> LocalBroker:
        """Node ``node_id`` (1-based, as Kafka numbers them)."""
        return self.nodes[node_id - 1]

    def stop(self) -> bool:
        """Stop every node; False when none was running. All are told at once: stopped one by
        one, the last two lose their controller quorum and hang until they are killed (a
        three-node stop took 31 s that way, 6 s this way)."""
        for pid in filter(None, (node.pid() for node in self.nodes)):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile: stop() tidies up
                os.kill(pid, signal.SIGTERM)
        stopped = [node.stop() for node in self.nodes]
        return any(stopped)

    def status(self) -> list[tuple[int, int, bool]]:
        """(node id, client port, serving) of every node."""
        return [
            (n + 1, node.port, node.pid() is not None and self._serves(node))
            for n, node in enumerate(self.nodes)
        ]


def existing_cluster(data_dir: Path, scram_users: dict[str, Credentials] | None = None) -> LocalCluster:
    """The cluster whose data is in ``data_dir`` (as many nodes as it was made with)."""
    layout = json.loads((Path(data_dir) / "cluster.json").read_text())
    return LocalCluster(data_dir, len(layout["ports"]), scram_users=scram_users)


def is_cluster(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a local cluster (rather than a single broker)."""
    return (Path(data_dir) / "cluster.json").exists()
