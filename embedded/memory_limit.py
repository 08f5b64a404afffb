"""The memory the embedded ClickHouse may use: its share of what the process's cgroup allows.

chDB sizes its server-wide limit (max_server_memory_usage) from the machine's RAM and missed a
container's cgroup limit: one large GROUP BY grew until the kernel killed the whole process (the
HTTP front, the bridge and gRPC with it). Under a limit it knows, ClickHouse spills large
aggregations and sorts to disk and refuses what still does not fit (MEMORY_LIMIT_EXCEEDED), and
the process lives on. The share leaves room for the rest of `analytics up` in the same cgroup.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARE = 0.8  # of the cgroup's limit, for chDB; the rest for Python, the broker's JVM and the page cache
_UNLIMITED = 1 << 60  # cgroup v1 says "no limit" with a number near 2**63


def cgroup_memory_limit(root: Path = Path("/")) -> int | None:
    """The lowest memory limit of this process's cgroups (v2 or v1), in bytes; None when there is none."""
    limits = []
    for line in _read(root / "proc/self/cgroup").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base, name = root / "sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        # The cgroup's own file and each parent's (a namespaced view may show only the root).
        here = Path(path.lstrip("/"))
        for folder in {here, *here.parents}:
            value = _read(base / folder / name).strip()
            if value.isdigit() and int(value) < _UNLIMITED:
                limits.append(int(value))
    return min(limits) if limits else None


def server_memory_limit(root: Path = Path("/")) -> int | None:
    """max_server_memory_usage for chDB when a cgroup limits the process below the machine's RAM."""
    limit = cgroup_memory_limit(root)
    if limit is None:
        return None
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(limit, ram) * SHARE) if limit < ram else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
