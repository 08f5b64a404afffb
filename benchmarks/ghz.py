"""ghz, the standard gRPC load tool, built from the Go module proxy (as `./dev` builds grpcurl), and run.

Each run calls one method with one of the given requests after another (ghz goes round the
list), from ``callers`` concurrent workers for ``seconds``, over one connection, and reports
ghz's own figures: latency percentiles of the calls and their rate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GHZ_VERSION = "v0.120.0"
GHZ = REPO / ".analytics" / "tools" / "bin" / "ghz"


def ghz_binary() -> Path:
    """The ghz binary, built once with `go install` from the Go module proxy."""
    if GHZ.is_file():
        return GHZ
    go = shutil.which("go")
    if go is None:
        raise SystemExit("ghz needs Go to be built (Debian's golang-go; ./dev test installs it)")
    GHZ.parent.mkdir(parents=True, exist_ok=True)
    print(f"building ghz {GHZ_VERSION} from the Go module proxy", flush=True)
    subprocess.run(
        [go, "install", f"github.com/bojand/ghz/cmd/ghz@{GHZ_VERSION}"],
        env={**os.environ, "GOBIN": str(GHZ.parent), "GOFLAGS": "-mod=mod"},
        check=True,
        timeout=1800,
    )
    return GHZ


@dataclass(frozen=True)
class Run:
    method: str
    callers: int
    requests: int
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    codes: dict[str, int]

    @property
    def errors(self) -> int:
        return sum(count for code, count in self.codes.items() if code != "OK")


def protoset(directory: Path) -> Path:
    """The services' descriptors as a FileDescriptorSet (Python's reflection cannot resolve methods for ghz)."""
    from google.protobuf import descriptor_pb2
    from grpc_health.v1 import health_pb2

    from analytics_proto import analytics_pb2

    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file_descriptor) -> None:
        if file_descriptor.name in files:
            return
        for dependency in file_descriptor.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        files[file_descriptor.name] = proto

    add(analytics_pb2.DESCRIPTOR)
    add(health_pb2.DESCRIPTOR)
    path = directory / "services.protoset"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString())
    return path


def run(
    target: str,
    method: str,
    requests: list[dict],
    callers: int,
    seconds: float,
    warmup: int = 20,
    deadline: float = 10.0,
) -> Run:
    """ghz against ``target`` (plaintext), ``method`` as package.Service.Method, each call with ``deadline``."""
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "requests.json"
        data.write_text(json.dumps(requests))
        result = subprocess.run(
            [
                str(ghz_binary()),
                "--insecure",
                "--protoset",
                str(protoset(Path(scratch))),
                "--call",
                method,
                "--data-file",
                str(data),
                "--concurrency",
                str(callers),
                "--duration",
                f"{seconds}s",
                "--duration-stop",
                "wait",
                "--skipFirst",
                str(warmup),
                "--timeout",
                f"{deadline}s",
                "--format",
                "json",
                target,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
    if result.returncode != 0 and not result.stdout.strip():
        raise RuntimeError(f"ghz failed: {result.stderr.strip()[-2000:]}")
    report = json.loads(result.stdout)
    percentiles = {entry["percentage"]: entry["latency"] / 1e6 for entry in report["latencyDistribution"] or []}
    return Run(
        method=method.rsplit(".", 1)[-1],
        callers=callers,
        requests=report["count"],
        p50_ms=percentiles.get(50, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        requests_per_s=report["rps"],
        codes=report.get("statusCodeDistribution") or {},
    )
