"""How long `analytics up` takes to serve, first on a fresh data directory and then restarted on it.

Every test of the stack and every operator's restart waits for this. In one run, ``--rounds``
times each:

1. the baseline: `analytics clickhouse` alone on a fresh data directory, until /ping answers;
2. `analytics up` (Dagster on) on a fresh data directory, until ClickHouse answers /ping and until
   the Dagster UI answers /server_info (the schema is built in between, by dbt);
3. the same `up` again on that data directory (the schema exists: dbt updates it in place).

It prints the medians, the ratios to the baseline, the resident memory of the `up` process itself
(Dagster and dbt run as its children) and how many dbt processes each start ran.

    .venv/bin/python -m benchmarks.bench_up_start [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.bench_http_front import machine
from tests.embedded_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def launch(data_dir: Path, *command: str, **env: str) -> subprocess.Popen:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ANALYTICS_")}
    environment.update(ANALYTICS_DATA_DIR=str(data_dir), ANALYTICS_LOG_LEVEL="WARNING", **env)
    log = open(data_dir.with_name(data_dir.name + ".log"), "ab")  # noqa: SIM115 - the child's for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "analytics.cli", *command], cwd=ROOT, env=environment, stdout=log, stderr=log
    )


def wait_for(process: subprocess.Popen, url: str, started: float, timeout: float = 600) -> float:
    while not answers(url):
        if process.poll() is not None or time.monotonic() - started > timeout:
            raise RuntimeError(f"{url} never answered (exit {process.poll()}); see the log next to the data directory")
        time.sleep(0.05)
    return time.monotonic() - started


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def dbt_runs(data_dir: Path) -> int:
    return sum(log.read_text(errors="replace").count("Running with dbt=") for log in data_dir.rglob("dbt.log"))


def baseline(work: Path) -> float:
    data_dir = work / "clickhouse"
    port = free_port()
    started = time.monotonic()
    process = launch(data_dir, "clickhouse", "--data-dir", str(data_dir), "--http-port", str(port))
    try:
        return wait_for(process, f"http://127.0.0.1:{port}/ping", started)
    finally:
        stop(process)


def up(data_dir: Path) -> dict[str, float]:
    http, dagster = free_port(), free_port()
    before = dbt_runs(data_dir)
    started = time.monotonic()
    process = launch(
        data_dir,
        "up",
        ANALYTICS_CLICKHOUSE_HTTP_PORT=str(http),
        ANALYTICS_DAGSTER_PORT=str(dagster),
        ANALYTICS_GRPC_PORT=str(free_port()),
    )
    try:
        clickhouse = wait_for(process, f"http://127.0.0.1:{http}/ping", started)
        ui = wait_for(process, f"http://127.0.0.1:{dagster}/server_info", started)
        memory = resident_mib(process.pid)
    finally:
        stop(process)
    runs = dbt_runs(data_dir) - before
    return {"clickhouse_s": clickhouse, "dagster_ui_s": ui, "up_rss_mib": memory, "dbt_runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"baseline": [], "fresh": [], "restart": []}
    for _ in range(args.rounds):
        work = Path(tempfile.mkdtemp(prefix="bench-up-"))
        try:
            rows["baseline"].append({"clickhouse_s": baseline(work)})
            rows["fresh"].append(up(work / "up"))
            rows["restart"].append(up(work / "up"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(row["clickhouse_s"] for row in rows["baseline"])
    print(f"machine: {machine()}; {args.rounds} rounds; medians")
    print(f"\nbaseline: analytics clickhouse serving after {base:.2f} s")
    for name in ("fresh", "restart"):
        median = {key: statistics.median(row[key] for row in rows[name]) for key in rows[name][0]}
        print(f"\nanalytics up, {'fresh data directory' if name == 'fresh' else 'restarted on it'}")
        print(f"  ClickHouse answers after    {median['clickhouse_s']:7.2f} s ({median['clickhouse_s'] / base:5.1f}x)")
        print(f"  Dagster UI answers after    {median['dagster_ui_s']:7.2f} s ({median['dagster_ui_s'] / base:5.1f}x)")
        print(f"  resident memory of up       {median['up_rss_mib']:7.0f} MiB")
        print(f"  dbt processes               {median['dbt_runs']:7.0f}")


if __name__ == "__main__":
    main()
