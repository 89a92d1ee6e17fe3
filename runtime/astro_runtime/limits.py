"""The CPU and memory this container may use: cgroup v2, then cgroup v1, then the host.

RUNTIME_CGROUP_ROOT (default /sys/fs/cgroup) points elsewhere for diagnostics and tests.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# cgroup v1 writes a page-rounded LONG_MAX for "no limit"
V1_UNLIMITED = 1 << 60


class LimitError(Exception):
    pass


@dataclass
class Limits:
    cpus: float
    memory_bytes: int
    cpu_source: str
    memory_source: str

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / (1 << 30)

    def as_dict(self) -> dict:
        return {"cpus": round(self.cpus, 3), "memory_bytes": self.memory_bytes,
                "cpu_source": self.cpu_source, "memory_source": self.memory_source}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _integer(text: str, path: Path) -> int:
    try:
        return int(text)
    except ValueError:
        raise LimitError(f"{path} holds {text!r}, not a number") from None


def _cgroup_v2(root: Path) -> tuple[float | None, int | None, str]:
    cpu = mem = None
    raw = _read(root / "cpu.max")
    if raw is not None:
        parts = raw.split()
        if len(parts) != 2:
            raise LimitError(f"{root / 'cpu.max'} holds {raw!r}, not '<quota|max> <period>'")
        if parts[0] != "max":
            quota, period = _integer(parts[0], root / "cpu.max"), \
                _integer(parts[1], root / "cpu.max")
            if quota <= 0 or period <= 0:
                raise LimitError(f"{root / 'cpu.max'} holds {raw!r}: not a positive quota")
            cpu = quota / period
    raw = _read(root / "memory.max")
    if raw is not None and raw != "max":
        mem = _integer(raw, root / "memory.max")
        if mem <= 0:
            raise LimitError(f"{root / 'memory.max'} holds {raw!r}: not a positive limit")
    return cpu, mem, "cgroup v2"


def _cgroup_v1(root: Path) -> tuple[float | None, int | None, str]:
    cpu = mem = None
    for folder in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
        quota_path = root / folder / "cpu.cfs_quota_us"
        quota = _read(quota_path)
        if quota is None:
            continue
        quota_us = _integer(quota, quota_path)
        period_path = root / folder / "cpu.cfs_period_us"
        period_us = _integer(_read(period_path) or "0", period_path)
        if quota_us == 0 or quota_us < -1:
            raise LimitError(f"{quota_path} holds {quota!r}: not a quota")
        if quota_us > 0:
            if period_us <= 0:
                raise LimitError(f"{period_path} holds {period_us}: not a positive period")
            cpu = quota_us / period_us
        break
    path = root / "memory" / "memory.limit_in_bytes"
    raw = _read(path)
    if raw is not None:
        value = _integer(raw, path)
        if value <= 0:
            raise LimitError(f"{path} holds {raw!r}: not a positive limit")
        if value < V1_UNLIMITED:
            mem = value
    return cpu, mem, "cgroup v1"


def _host_cpus() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


def _host_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def detect(env=os.environ) -> Limits:
    root = Path(env.get("RUNTIME_CGROUP_ROOT", "/sys/fs/cgroup"))
    if os.path.exists(root / "cgroup.controllers"):  # (False, not an error, when unreadable)
        cpu, mem, kind = _cgroup_v2(root)
    else:
        cpu, mem, kind = _cgroup_v1(root)
    host_cpus, host_mem = _host_cpus(), _host_memory()
    # a quota above the CPUs we may run on (or a limit above the RAM) does not add any
    cpus, cpu_source = (cpu, kind) if cpu is not None and cpu <= host_cpus else \
        (host_cpus, "host")
    memory, memory_source = (mem, kind) if mem is not None and mem <= host_mem else \
        (host_mem, "host")
    return Limits(cpus, memory, cpu_source, memory_source)


def whole_cpus(limits: Limits) -> int:
    """CPUs rounded up: 1.5 CPUs run two processes at once, slower."""
    return max(1, math.ceil(limits.cpus - 1e-9))
