"""local.settings.json and host.json, read the way Core Tools and the Functions host do."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

AZURITE_ACCOUNT = "devstoreaccount1"
# Public, well-known Azurite/storage-emulator key; not a secret.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEFAULT_AZURITE_PORTS = (10000, 10001, 10002)


def azurite_connection_string(
    blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1"
) -> str:
    """Explicit devstoreaccount1 connection string for Azurite listening on ``host``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{AZURITE_ACCOUNT};"
    )


def expand_connection_string(value: str) -> str:
    """Turn ``UseDevelopmentStorage=true`` into the explicit Azurite string.

    Not every SDK understands the shorthand, and an explicit string also pins 127.0.0.1.
    """
    if value.strip().rstrip(";").replace(" ", "").lower() == "usedevelopmentstorage=true":
        return azurite_connection_string(*DEFAULT_AZURITE_PORTS)
    return value


def load_local_settings(
    path: str | Path = "local.settings.json", environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Copy ``Values`` into ``environ`` (default ``os.environ``) without overriding set variables.

    Core Tools gives the process environment precedence, so CI can override a checked-in file.
    A missing file is fine (returns ``{}``). Returns the values read, after expansion.
    """
    target = os.environ if environ is None else environ
    file = Path(path)
    if not file.is_file():
        return {}
    data = json.loads(file.read_text(encoding="utf-8-sig"))
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise TypeError(f"{file}: 'Values' must be an object")
    loaded: dict[str, str] = {}
    for key, value in values.items():
        text = expand_connection_string("" if value is None else str(value))
        loaded[key] = text
        target.setdefault(key, text)
    return loaded


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$")


def parse_timespan(value: str | None) -> timedelta | None:
    """Parse a .NET TimeSpan as used in host.json (``[d.]hh:mm:ss[.fff]``); -1 means unlimited."""
    if value is None or str(value).strip() in ("", "-1"):
        return None
    m = _TIMESPAN.match(str(value).strip())
    if not m:
        raise ValueError(f"invalid TimeSpan {value!r}; expected [d.]hh:mm:ss")
    days, hours, minutes, seconds, fraction = m.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds) + float(f"0.{fraction or 0}"),
    )


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` from host.json, with short local retry/polling defaults.

    Azure's defaults are visibilityTimeout 0 and maxPollingInterval 1 min; locally we retry after
    2 s and poll at least every second so tests and manual runs get quick feedback.
    """

    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(seconds=2)
    batch_size: int = 16
    max_polling_interval: timedelta = timedelta(seconds=1)
    message_encoding: str = "base64"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueOptions:
        defaults = cls()
        encoding = str(data.get("messageEncoding", defaults.message_encoding)).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(
                f"host.json messageEncoding must be 'base64' or 'none', not {encoding!r}"
            )
        batch_size = int(data.get("batchSize", defaults.batch_size))
        if not 1 <= batch_size <= 32:
            raise ValueError("host.json extensions.queues.batchSize must be between 1 and 32")
        visibility = parse_timespan(data.get("visibilityTimeout"))
        polling = parse_timespan(data.get("maxPollingInterval"))
        return cls(
            max_dequeue_count=int(data.get("maxDequeueCount", defaults.max_dequeue_count)),
            visibility_timeout=defaults.visibility_timeout if visibility is None else visibility,
            batch_size=batch_size,
            max_polling_interval=defaults.max_polling_interval if polling is None else polling,
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the local host honours."""

    route_prefix: str = "api"
    function_timeout: timedelta | None = None
    queues: QueueOptions = field(default_factory=QueueOptions)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostConfig:
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", "api")
        return cls(
            route_prefix="" if prefix is None else str(prefix).strip("/"),
            function_timeout=parse_timespan(data.get("functionTimeout")),
            queues=QueueOptions.from_json(extensions.get("queues") or {}),
        )

    @classmethod
    def load(cls, path: str | Path = "host.json") -> HostConfig:
        """Read ``path``; a missing file yields the Functions defaults."""
        file = Path(path)
        if not file.is_file():
            return cls()
        return cls.from_json(json.loads(file.read_text(encoding="utf-8-sig")))


def resolve_connection(name: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Connection string for a binding's ``connection`` setting name.

    Mirrors the host: empty means ``AzureWebJobsStorage``, and ``X`` falls back to
    ``AzureWebJobsX``. Identity-based (``X__queueServiceUri``) connections are not emulated.
    """
    env = os.environ if environ is None else environ
    setting = name or "AzureWebJobsStorage"
    for candidate in (setting, f"AzureWebJobs{setting}"):
        if env.get(candidate):
            return expand_connection_string(env[candidate])
    raise ValueError(
        f"connection setting {setting!r} is not set (looked for {setting!r} and "
        f"'AzureWebJobs{setting}' in the environment / local.settings.json)"
    )
