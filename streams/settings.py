"""Settings from the environment (``JOINTBUS_*``) and a TOML file.

Precedence: explicit arguments, then environment, then ``jointbus.toml`` (or the file
``JOINTBUS_CONFIG`` names), then defaults. Setting ``bootstrap`` points every command at
an existing cluster; otherwise the embedded local broker is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Everything a jointbus process needs to know about where it runs."""

    model_config = SettingsConfigDict(env_prefix="JOINTBUS_", extra="ignore")

    bootstrap: str | None = Field(
        default=None, description="bootstrap servers of an existing cluster; unset: local broker"
    )
    home: Path = Field(default=Path(".jointbus"), description="local state: broker, keys, index")
    broker_port: int = Field(default=19092, ge=1024, le=65535)
    broker_heap: str = "768m"
    keystore: Path | None = Field(default=None, description="keystore dir; default HOME/keys")
    partitions: int = Field(default=3, ge=1, le=64)
    replication: int = Field(default=1, ge=1, le=5)
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT"] = Field(
        default="PLAINTEXT", description="SASL_PLAINTEXT: SCRAM-SHA-512 with per-principal credentials"
    )
    log_level: str = "INFO"
    ack_deadline_seconds: float = Field(
        default=3 * 24 * 3600,
        gt=0,
        description="bus policy: a transferred clue is acknowledged within",
    )
    deadline_scan_seconds: float = Field(default=30.0, gt=0, description="how often deadlines are checked")
    worker_commit_interval: float = Field(default=1.0, gt=0)
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve Prometheus metrics on this port (default: off)"
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="the address the metrics endpoint listens on (loopback by default)"
    )
    worker_instance_id: str | None = Field(
        default=None, description="static group member id of this worker (default: host name)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("JOINTBUS_CONFIG", "jointbus.toml"))
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file)

    @property
    def uses_local_broker(self) -> bool:
        return self.bootstrap is None

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    @property
    def worker_dir(self) -> Path:
        return self.home / "worker"

    @property
    def secure(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    @property
    def credentials_dir(self) -> Path:
        return self.keystore_dir / "kafka"

    @property
    def keystore_dir(self) -> Path:
        return self.keystore or self.home / "keys"
