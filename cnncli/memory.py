"""How much memory this process may still allocate, and a refusal before asking for more.

A network or a file can ask for more memory than the machine has (a spec with a 100000x100000
input, an .npz whose header claims 2 TB). numpy would then fail half-way with a MemoryError, or the
machine would swap; cnncli instead estimates first (from the spec, or from a file's headers) and
refuses with the figure. The limit is the smallest of: the kernel's MemAvailable, the cgroup's
memory.max (containers) and the process's own address-space limit (`ulimit -v`).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from .errors import UserError


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(soft - int(line.split()[1]) * 1024, 0)
    except (OSError, ValueError, IndexError):
        pass
    return soft


def available() -> int | None:
    """Bytes this process can still allocate, or None when nothing tells."""
    figures = [f for f in (_meminfo_available(), _cgroup_available(), _address_space_available()) if f is not None]
    return min(figures) if figures else None


def require(need: int, what: str, hint: str | None = None) -> None:
    """Refuse (UserError) when `need` bytes exceed what this process can allocate.

    `what` names the consumer, e.g. "data.npz: the arrays" or "training resnet.yaml at batch 64"."""
    free = available()
    if free is not None and need > free:
        from .report import human_bytes

        raise UserError(f"{what} needs {human_bytes(need)} of memory, more than the {human_bytes(free)} available",
                        hint or "use a smaller input, batch or network, or a machine with more memory")


def model_bytes(spec, value_bytes: int = 4) -> int:
    """What building the spec's model allocates: weights, their gradients and buffers (cnn shapes' figures)."""
    m = spec.memory(0)
    return (m["weights"] + m["gradients"] + m["buffers"]) * value_bytes // 4


def require_for(spec, batch: int, what: str, training: bool = True, value_bytes: int = 4) -> None:
    """Refuse to run `spec` at `batch` when the estimate `cnn shapes` prints does not fit: a training
    step (weights, gradients, optimizer state, buffers, activations, their gradients, workspace), or
    for inference the weights, gradients and buffers a model holds plus one forward's activations and workspace."""
    m = spec.memory(batch)
    need = (m["total"] if training else model_bytes(spec) + m["activations"] + m["workspace"]) * value_bytes // 4
    require(need, f"{what} at batch {batch}",
            f"cnn shapes {spec.file} --batch {batch} shows the estimate; use a smaller input, batch or network")
