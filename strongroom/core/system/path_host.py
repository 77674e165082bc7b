"""sys/ha-status and sys/host-info, in Vault's shapes (load tools and `vault operator members` probe them)."""

from __future__ import annotations

import os
import platform
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil

from strongroom.core.logical import Operation, Request, Response
from strongroom.framework import FieldData, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _cpu() -> list[dict[str, Any]]:
    model, vendor, mhz = platform.processor(), "", 0.0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and not model:
                    model = value
                elif key == "vendor_id" and not vendor:
                    vendor = value
    except OSError:  # not Linux: the model name from platform is all there is
        pass
    freq = psutil.cpu_freq()
    if freq is not None:
        mhz = float(freq.current)
    return [
        {"cpu": i, "vendorId": vendor, "modelName": model, "mhz": mhz, "cores": 1}
        for i in range(psutil.cpu_count() or 1)
    ]


def _disk() -> list[dict[str, Any]]:
    out = []
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # a mount point we may not stat
            continue
        out.append(
            {
                "path": part.mountpoint,
                "fstype": part.fstype,
                "total": usage.total,
                "free": usage.free,
                "used": usage.used,
                "usedPercent": usage.percent,
            }
        )
    return out


def _host() -> dict[str, Any]:
    boot = psutil.boot_time()
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "uptime": int(time.time() - boot),
        "bootTime": int(boot),
        "procs": len(psutil.pids()),
        "os": uname.system.lower(),
        "platform": platform.system().lower(),
        "platformFamily": "",
        "platformVersion": uname.release,
        "kernelVersion": uname.release,
        "kernelArch": uname.machine,
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostid": "",
    }


def _memory() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "total": vm.total,
        "available": vm.available,
        "used": vm.used,
        "usedPercent": vm.percent,
        "free": vm.free,
    }


def paths(core: Core) -> list[Path]:
    async def ha_status(req: Request, fd: FieldData) -> Response:
        node = {
            "hostname": socket.gethostname(),
            "api_address": str(getattr(core.ha, "advertise_addr", "") or ""),
            "cluster_address": "",
            "active_node": core.serving,
            "last_echo": None,
            "version": core_version(),
            "upgrade_version": core_version(),
            "redundancy_zone": "",
        }
        return Response(data={"nodes": [node]}, inject_top_level=True)  # Vault's Go client reads top-level "nodes"

    async def host_info(req: Request, fd: FieldData) -> Response:
        cpu_times = psutil.cpu_times()
        return Response(
            data={
                "timestamp": _rfc3339(time.time()),
                "cpu": _cpu(),
                "cpu_times": [{"cpu": "cpu-total", "user": cpu_times.user, "system": cpu_times.system,
                               "idle": cpu_times.idle}],
                "disk": _disk(),
                "host": _host(),
                "memory": _memory(),
                "pid": os.getpid(),
            }
        )

    return [
        Path(r"ha-status", {Operation.READ: ha_status}, summary="The HA cluster's nodes (this node alone without HA)."),
        # root-protected, as in Vault: it describes the machine the secrets live on
        Path(r"host-info", {Operation.READ: host_info}, sudo=True, summary="CPU, disk, host and memory of the node."),
    ]


def core_version() -> str:
    from strongroom.core.core import VERSION

    return VERSION
