"""Where the test suite's CPU goes: pytest as `./dev test` runs it, every process sampled from /proc.

The suite is bound by the two cores' CPU more than by waiting, so the lever for its wall-clock time
is the CPU each kind of process spends. While pytest runs (three workers or `ANALYTICS_TEST_WORKERS`,
a file each at a time, as `./dev test` does; extra arguments go to pytest), every process's CPU time is read from
/proc/<pid>/stat twice a second and filed under the kind of process its command line names (dbt,
Dagster, the embedded ClickHouse, a Kafka broker, ...). At the end it prints the wall-clock time,
the CPU-seconds of each kind with its share, how many processes of that kind ran, and how busy the
cores were (CPU-seconds over the cores times the wall-clock time). A process that ends between two
samples loses at most half a second of its CPU, so the figures are a lower bound. Linux only.

    .venv/bin/python -m benchmarks.suite_profile [pytest arguments]
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks.bench_http_front import machine

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

# The first pattern found in a command line names its kind; the order matters.
KINDS = [
    ("/bin/dbt", "dbt"),
    ("tests.dbt_prefork", "dbt"),  # the suite's dbt: forks of one process per worker (tests/dbt_prefork.py)
    ("dagster", "Dagster (webserver, daemon, code servers, runs)"),
    ("analytics.cli up", "analytics up (chDB, gRPC, bridge in one process)"),
    ("analytics.cli clickhouse", "analytics clickhouse (chDB)"),
    ("analytics.cli grpc", "analytics grpc"),
    ("analytics.cli", "other analytics commands"),
    ("kafka.Kafka", "Kafka brokers"),
    ("kafka.tools", "Kafka brokers"),
    ("java", "other Java (the JDBC client)"),
    ("chrom", "Chromium"),
    ("node", "Node (@clickhouse/client)"),
    ("grpcurl", "Go programs (grpcurl, clickhouse-go)"),
    ("clickhouse-go", "Go programs (grpcurl, clickhouse-go)"),
    ("exec(eval(sys.stdin", "pytest workers (tests and in-process fixtures)"),
    ("pytest", "pytest (the controller)"),
]


def kind_of(command: str) -> str:
    return next((kind for pattern, kind in KINDS if pattern in command), "other")


def stat_fields(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sample(root: int, stop: threading.Event, seen: dict) -> None:
    """Every descendant of `root` (and `root`): {(pid, start time): [kind, CPU seconds]}."""
    while not stop.is_set():
        stats = {entry.name: stat_fields(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()}
        stats = {pid: fields for pid, fields in stats.items() if fields is not None}
        for pid, fields in stats.items():
            ancestor = pid
            while ancestor not in ("0", "1", str(root)) and ancestor in stats:
                ancestor = stats[ancestor][1]  # the parent's pid
            if ancestor != str(root):
                continue
            key = (pid, fields[19])  # pid and start time: a reused pid is another process
            if key not in seen:
                seen[key] = [kind_of(command_line(pid)), 0.0]
            seen[key][1] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        stop.wait(0.5)


def main() -> int:
    workers = os.environ.get("ANALYTICS_TEST_WORKERS", "3")  # as `./dev test` runs it
    command = [sys.executable, "-m", "pytest", "-n", workers, "--dist", "loadfile", "-q", *sys.argv[1:]]
    env = {**os.environ, "PATH": f"{ROOT / '.analytics' / 'tools' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    seen: dict = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(process.pid, stop, seen), daemon=True)
    sampler.start()
    code = process.wait()
    wall = time.monotonic() - started
    stop.set()
    sampler.join()

    cpu: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    for kind, seconds in seen.values():
        cpu[kind] += seconds
        processes[kind] += 1
    total = sum(cpu.values())
    print(f"\nmachine: {machine()}")
    busy = total / wall / (os.cpu_count() or 1)
    print(f"pytest exit code {code}; wall-clock {wall:.0f} s; CPU {total:.0f} s; the cores busy {busy:.0%}")
    print(f"{'CPU-s':>8} {'share':>6} {'processes':>9}  kind")
    for kind, seconds in cpu.most_common():
        print(f"{seconds:8.0f} {seconds / total:6.1%} {processes[kind]:9d}  {kind}")
    return code


if __name__ == "__main__":
    sys.exit(main())
