"""The embedded ClickHouse's memory limit under a container's cgroup (embedded/memory_limit.py).

chDB took its limit from the machine's RAM: in a 3 GB container one GROUP BY grew until the kernel
killed the whole process. The cgroup files are read from a directory standing for / (a pure unit);
that chDB takes the limit and spills a large aggregation under it is run for real.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from embedded.engine import server_config
from embedded.memory_limit import SHARE, cgroup_memory_limit, server_memory_limit

GIB = 1 << 30
ROOT = Path(__file__).resolve().parent.parent


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, value in files.items():
        path = tmp_path / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return tmp_path


def test_a_cgroup_v2_limit_of_the_process_or_a_parent_is_found(tmp_path):
    root = fake_root(
        tmp_path, "0::/kubepods/pod1/app\n", {"kubepods/pod1/memory.max": str(3 * GIB), "kubepods/memory.max": "max"}
    )
    assert cgroup_memory_limit(root) == 3 * GIB


def test_a_cgroup_v1_limit_seen_only_at_the_root_of_a_namespaced_view_is_found(tmp_path):
    cgroup = "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"
    root = fake_root(tmp_path, cgroup, {"memory/memory.limit_in_bytes": str(2 * GIB)})
    assert cgroup_memory_limit(root) == 2 * GIB


def test_no_limit_is_none(tmp_path):
    root = fake_root(tmp_path, "4:memory:/\n0::/\n", {"memory/memory.limit_in_bytes": "9223372036854771712"})
    assert cgroup_memory_limit(root) is None and server_memory_limit(root) is None
    assert cgroup_memory_limit(tmp_path / "nothing") is None  # no /proc at all


def test_the_server_gets_its_share_of_a_limit_below_the_ram(tmp_path):
    root = fake_root(tmp_path, "0::/app\n", {"app/memory.max": str(3 * GIB)})
    assert server_memory_limit(root) == int(3 * GIB * SHARE)
    assert server_config(None).count("max_server_memory_usage") == 0
    assert f"<max_server_memory_usage>{GIB}</max_server_memory_usage>" in server_config(GIB)


def test_the_engine_keeps_to_the_limit_and_spills_an_aggregation_larger_than_it(tmp_path):
    """The engine as a cgroup of 750 MB makes it: 30 million keys grouped took about 1.5 GB
    without a limit; under 600 MB (its share) they spill, and are answered."""
    program = textwrap.dedent(f"""
        import resource
        from embedded import engine as embedded_engine
        embedded_engine.server_memory_limit = lambda: 600 * 1000 * 1000  # a cgroup's 750 MB, its share
        engine = embedded_engine.Engine("{tmp_path / "data"}")
        engine.open()
        with engine.connection() as connection:
            for sql in (
                "SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage'",
                "SELECT count() FROM (SELECT number AS k, count() FROM numbers(30000000) GROUP BY k)",
            ):
                print(connection.query(sql, "TSV").bytes().decode().strip())
        engine.close()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    limit, groups, peak_mib = done.stdout.split()
    assert (limit, groups) == ("600000000", "30000000")
    assert int(peak_mib) < 1200, f"the process peaked at {peak_mib} MiB under a 600 MB limit"
