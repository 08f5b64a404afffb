"""How long a local Kafka broker takes to start and stop, with and without its class-data archive.

Every `analytics kafka`, every `up --with-kafka` and about thirty tests start one. In one run,
``--rounds`` times each, alternating, every broker on a fresh data directory:

1. the baseline: the broker's JVM without a class-data archive (as before embedded/kafka/class_data.py);
2. the same JVM mapping the archive the first clean stop wrote.

It prints the median and p99 of the time until the broker serves and of the CPU-seconds its JVMs
(storage format and broker) spent from start to stop, and the ratios to the baseline.

    .venv/bin/python -m benchmarks.bench_kafka_start [--rounds 7]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_grpc import percentile
from benchmarks.bench_http_front import machine
from embedded.kafka.broker import KafkaBroker, free_port
from embedded.kafka.jars import ensure_jars

ROOT = Path(__file__).resolve().parent.parent
JARS = ROOT / ".analytics" / "kafka"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_start(work: Path, archive: bool) -> tuple[float, float]:
    """Seconds until the broker serves, and the CPU-seconds of its JVMs from start to stop."""
    broker = KafkaBroker(work / f"b-{time.monotonic_ns()}", free_port(), jars_dir=JARS, class_data_archive=archive)
    cpu = children_cpu()
    started = time.monotonic()
    broker.start()
    serving = time.monotonic() - started
    broker.stop()
    return serving, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        one_start(work, archive=True)  # writes the archive if this checkout has none yet
        assert any(ensure_jars(JARS).glob("broker-*.jsa")), "no class-data archive was written"
        samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(rounds):
            for archive in (False, True):
                samples[archive].append(one_start(work, archive))
    print(f"machine: {machine()}; {rounds} starts each, alternating")
    base_start = statistics.median(s for s, _ in samples[False])
    base_cpu = statistics.median(c for _, c in samples[False])
    for archive, label in ((False, "baseline, no archive"), (True, "with the class-data archive")):
        starts, cpus = [s for s, _ in samples[archive]], [c for _, c in samples[archive]]
        print(
            f"{label:28} serves after median {statistics.median(starts):.2f} s (p99 {percentile(starts, 0.99):.2f}),"
            f" {statistics.median(starts) / base_start:.2f}x; JVM CPU median {statistics.median(cpus):.2f} s"
            f" (p99 {percentile(cpus, 0.99):.2f}), {statistics.median(cpus) / base_cpu:.2f}x"
        )


if __name__ == "__main__":
    main()
