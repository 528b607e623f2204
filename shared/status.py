"""GET /status: this instance's memory, CPU, disk, uptime and loaded models (psutil).

Like the earlier system's /status, per instance: on Flex Consumption each instance
answers for itself, so two calls may reach two instances.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from pydantic import BaseModel

_MiB = 1024 * 1024


class Memory(BaseModel):
    process_rss_mib: float
    total_mib: float
    available_mib: float
    used_percent: float


class Cpu(BaseModel):
    count: int
    used_percent: float
    process_seconds: float
    load_average: list[float] | None = None


class Disk(BaseModel):
    path: str
    total_mib: float
    free_mib: float
    used_percent: float


class LoadedModel(BaseModel):
    name: str
    version: int
    format: str | None = None
    size_bytes: int


class InstanceStatus(BaseModel):
    version: str
    instance: str
    uptime_seconds: float
    memory: Memory
    cpu: Cpu
    disks: list[Disk]
    loaded_models: list[LoadedModel]


def _disk(path: str) -> Disk:
    import psutil

    usage = psutil.disk_usage(path)
    return Disk(
        path=path,
        total_mib=round(usage.total / _MiB, 1),
        free_mib=round(usage.free / _MiB, 1),
        used_percent=usage.percent,
    )


def instance_status(
    version: str, instance: str, loaded_models: list[dict[str, Any]]
) -> InstanceStatus:
    import psutil  # lazy: only admins' /status pays for it

    process = psutil.Process()
    memory = psutil.virtual_memory()
    cpu_times = process.cpu_times()
    try:
        load = [round(x, 2) for x in psutil.getloadavg()]
    except (AttributeError, OSError):
        load = None
    # The app's own folder and the temp folder (Flex Consumption: read-only package,
    # writable temp storage of limited size).
    disks = [_disk(path) for path in dict.fromkeys(["/", tempfile.gettempdir()])]
    return InstanceStatus(
        version=version,
        instance=instance,
        uptime_seconds=round(time.time() - process.create_time(), 1),
        memory=Memory(
            process_rss_mib=round(process.memory_info().rss / _MiB, 1),
            total_mib=round(memory.total / _MiB, 1),
            available_mib=round(memory.available / _MiB, 1),
            used_percent=memory.percent,
        ),
        cpu=Cpu(
            count=psutil.cpu_count() or 1,
            used_percent=psutil.cpu_percent(interval=0.1),
            process_seconds=round(cpu_times.user + cpu_times.system, 2),
            load_average=load,
        ),
        disks=disks,
        loaded_models=[LoadedModel(**m) for m in loaded_models],
    )
