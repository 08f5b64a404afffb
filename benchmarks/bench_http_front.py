"""What the ClickHouse HTTP front costs on top of chDB, measured in one run.

Baseline: chDB in this process (its own data directory). Measured: the same statements against
`analytics clickhouse` (a separate process) over HTTP, raw (urllib3) and through clickhouse-connect.
Prints medians (and p99 for the small queries) and the ratio to the baseline; also the server's
resident memory while it streams a large result and takes a large insert.

    .venv/bin/python -m benchmarks.bench_http_front [--rows 1000000] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import urllib3
from chdb import _chdb

from tests import embedded_server

HTTP = urllib3.PoolManager(maxsize=4, retries=False)


def timed(function, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def p99(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.99) - 1]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    import os

    return (
        f"{os.cpu_count()} cores, {cpu}, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--insert-repeat", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    local = _chdb.connect(str(work / "inprocess"))
    server = embedded_server.start(work / "served")
    client = server.client(compress=False)
    results: dict[str, dict] = {}

    def run(sql: str) -> bytes:
        response = HTTP.request("POST", server.url + "/", body=sql.encode())
        assert response.status == 200, response.data
        return response.data

    table = "CREATE TABLE default.points (id UInt64, label String, value Float64) ENGINE = MergeTree ORDER BY id"
    fill = (
        "INSERT INTO default.points SELECT number, concat('label-', toString(number)), number / 3 "
        f"FROM numbers({args.rows})"
    )
    local.query(table)
    local.query(fill)
    run(table)
    run(fill)

    def compare(name: str, baseline, candidates: dict, repeat: int) -> None:
        base = timed(baseline, repeat)
        row = {"in-process chDB": {"median_ms": statistics.median(base) * 1e3, "p99_ms": p99(base) * 1e3}}
        for label, function in candidates.items():
            samples = timed(function, repeat)
            row[label] = {
                "median_ms": statistics.median(samples) * 1e3,
                "p99_ms": p99(samples) * 1e3,
                "ratio": statistics.median(samples) / statistics.median(base),
            }
        results[name] = row

    # 1. SELECT 1
    compare(
        "SELECT 1",
        lambda: local.query("SELECT 1", "TabSeparated"),
        {"HTTP (urllib3)": lambda: run("SELECT 1"), "clickhouse-connect": lambda: client.command("SELECT 1")},
        args.repeat,
    )

    # 2. Point lookup on the MergeTree, with a server-side parameter.
    rng = random.Random(7)
    lookup = "SELECT label, value FROM default.points WHERE id = {id:UInt64}"
    compare(
        f"point lookup ({args.rows:,} rows)",
        lambda: local.query(lookup, "TabSeparated", params={"id": str(rng.randrange(args.rows))}),
        {
            "HTTP (urllib3)": lambda: HTTP.request(
                "POST", f"{server.url}/?param_id={rng.randrange(args.rows)}", body=lookup.encode()
            ),
            "clickhouse-connect": lambda: client.query(lookup, parameters={"id": rng.randrange(args.rows)}),
        },
        args.repeat,
    )

    # 3. Insert of the same rows: in-process chDB reads them from a file (as the front does).
    payload = local.query(
        f"SELECT number AS id, concat('label-', toString(number)) AS label, number / 3 AS value "
        f"FROM numbers({args.rows})",
        "TabSeparated",
    ).bytes()
    (work / "rows.tsv").write_bytes(payload)
    rows_for_client = [[i, f"label-{i}", i / 3] for i in range(args.rows)]
    for target in ("ins_local", "ins_http", "ins_client"):
        ddl = f"CREATE TABLE default.{target} (id UInt64, label String, value Float64) ENGINE = MergeTree ORDER BY id"
        if target == "ins_local":
            local.query(ddl)
        else:
            run(ddl)
    compare(
        f"insert {args.rows:,} rows",
        lambda: local.query(f"INSERT INTO default.ins_local FROM INFILE '{work / 'rows.tsv'}' FORMAT TSV"),
        {
            "HTTP TSV body (urllib3)": lambda: HTTP.request(
                "POST", f"{server.url}/?query=INSERT%20INTO%20default.ins_http%20FORMAT%20TSV", body=payload
            ),
            "clickhouse-connect rows (Native, lz4)": lambda: server.client().insert(
                "default.ins_client", rows_for_client, column_names=["id", "label", "value"]
            ),
        },
        args.insert_repeat,
    )

    # 4. What clickhouse-go's defaults cost: Native at its protocol revision (block framing in
    #    Python) and ClickHouse's LZ4 block compression, against plain Native over the same HTTP.
    native = "SELECT id, label, value FROM default.points WHERE id < {rows:UInt64} FORMAT Native"
    native_rows = min(args.rows, 1_000_000)

    def native_request(**extra) -> None:
        response = HTTP.request(
            "POST", server.url + "/?" + urlencode({"param_rows": native_rows, **extra}), body=native.encode()
        )
        assert response.status == 200, response.data[:300]

    compare(
        f"Native result of {native_rows:,} rows (baseline: in-process chDB)",
        lambda: local.query(native, "Native", params={"rows": str(native_rows)}),
        {
            "HTTP Native (urllib3)": native_request,
            "HTTP Native, client_protocol_version=54460": lambda: native_request(client_protocol_version="54460"),
            "HTTP Native, revision + compress=1 (LZ4)": lambda: native_request(
                client_protocol_version="54460", compress="1"
            ),
        },
        max(args.insert_repeat, 10),
    )

    # 5. Memory while streaming a large result and while taking a large streamed insert.
    idle = rss_kib(server.process.pid)
    peak = {"value": idle}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["value"] = max(peak["value"], rss_kib(server.process.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    streamed = 0
    response = HTTP.request(
        "POST", server.url + "/", body=b"SELECT number, toString(number) FROM numbers(30000000)", preload_content=False
    )
    for chunk in response.stream(1 << 20):
        streamed += len(chunk)
    result_peak = peak["value"]
    peak["value"] = rss_kib(server.process.pid)
    run("CREATE TABLE default.big_insert (n UInt64, s String) ENGINE = MergeTree ORDER BY n")

    def big_body():
        for start in range(0, 20_000_000, 100_000):
            yield b"".join(b"%d\tvalue %d\n" % (i, i) for i in range(start, start + 100_000))

    sent = HTTP.request(
        "POST", f"{server.url}/?query=INSERT%20INTO%20default.big_insert%20FORMAT%20TSV", body=big_body(), chunked=True
    )
    assert sent.status == 200, sent.data
    insert_peak = peak["value"]
    done.set()
    sampler.join()
    results["memory (server RSS)"] = {
        "idle_mib": idle / 1024,
        f"streaming a {streamed / 2**20:,.0f} MiB result: peak_mib": result_peak / 1024,
        "taking a 20M-row (~330 MiB) streamed insert: peak_mib": insert_peak / 1024,
    }

    server.stop()
    print(f"machine: {machine()}")
    for name, row in results.items():
        print(f"\n{name}")
        for label, figures in row.items():
            if isinstance(figures, dict):
                text = "  ".join(f"{k}={v:,.3f}" for k, v in figures.items())
            else:
                text = f"{figures:,.1f}"
            print(f"  {label:40s} {text}")
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "http_front.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
