"""The official ClickHouse clients the client tests run, each installed from its own registry.

  * the JDBC driver from Maven Central (tests/clients/jdbc/pom.xml), copied into .analytics/tools/jdbc;
  * clickhouse-go from the Go module proxy (tests/clients/go, go.mod and go.sum committed), built
    into .analytics/tools/bin;
  * @clickhouse/client from npm (tests/clients/node, package-lock.json committed), `npm ci`;
  * grpc-go with stubs generated from proto/analytics/analytics.proto (tests/clients/grpc-go: the
    code generators are tools of its go.mod, run by grpcio-tools' protoc), built into
    .analytics/tools/bin; and the documentation's own Go code (tests/clients/scheduler-go) against
    stubs generated as the scheduler generates them, with no flag naming their import path.

Each step runs once and is skipped while its inputs are unchanged (a stamp holds their digest).
`./dev test` runs them all (``python -m tests.client_tools``); the fixtures call them again, which
is instant once done. A missing toolchain skips the tests, except in CI, where it fails them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLIENTS = REPO / "tests" / "clients"
TOOLS = REPO / ".analytics" / "tools"


class ToolUnavailable(Exception):
    """A client could not be installed (its toolchain is missing, or its registry refused)."""


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(command: list[str], cwd: Path, what: str, env: dict | None = None) -> None:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        said = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ToolUnavailable(f"{what} failed (exit {result.returncode}): {said}")


def _need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ToolUnavailable(f"{program} is not on PATH (Debian package {package}; ./dev test installs it)")
    return path


def jdbc_classpath() -> str:
    """The JDBC driver's jars (Maven Central), as a Java class path."""
    pom = CLIENTS / "jdbc" / "pom.xml"
    lib = TOOLS / "jdbc" / "lib"
    stamp = lib / ".pom-sha256"
    digest = _digest(pom)
    if not (stamp.is_file() and stamp.read_text() == digest):
        mvn = _need("mvn", "maven")
        staging = lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        _run(
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "--file",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            CLIENTS / "jdbc",
            "mvn dependency:copy-dependencies (the JDBC driver)",
        )
        (staging / stamp.name).write_text(digest)
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    _need("java", "default-jdk-headless")
    return str(lib / "*")


def go_client() -> Path:
    """The clickhouse-go check program, built from the Go module proxy."""
    source = CLIENTS / "go"
    binary = TOOLS / "bin" / "clickhouse-go-check"
    stamp = binary.with_name(binary.name + ".sha256")
    digest = _digest(source / "go.mod", source / "go.sum", source / "main.go")
    if not (binary.is_file() and stamp.is_file() and stamp.read_text() == digest):
        go = _need("go", "golang-go")
        binary.parent.mkdir(parents=True, exist_ok=True)
        # GOTOOLCHAIN=auto: an older Go fetches the toolchain go.mod asks for, from the module proxy.
        _run(
            [go, "build", "-o", str(binary), "."],
            source,
            "go build (clickhouse-go)",
            env={"GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "auto"},
        )
        stamp.write_text(digest)
    return binary


def _go_protoc_plugins(go: str, env: dict) -> Path:
    """protoc-gen-go and protoc-gen-go-grpc, at the versions tests/clients/grpc-go/go.mod pins."""
    plugins = TOOLS / "protoc-go"
    _run(
        [go, "build", "-o", f"{plugins}/", *GO_PROTOC_PLUGINS],
        CLIENTS / "grpc-go",
        "go build (protoc-gen-go, protoc-gen-go-grpc)",
        env=env,
    )
    return plugins


def _go_stubs(plugins: Path, source: Path, module: str, *options: str) -> None:
    """protoc's Go stubs of analytics.proto into ``source`` (a module named ``module``)."""
    proto = REPO / "proto"
    go_options = ",".join((f"module={module}", *options))
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto}",
            f"--plugin=protoc-gen-go={plugins / 'protoc-gen-go'}",
            f"--plugin=protoc-gen-go-grpc={plugins / 'protoc-gen-go-grpc'}",
            f"--go_out={source}",
            f"--go_opt={go_options}",
            f"--go-grpc_out={source}",
            f"--go-grpc_opt={go_options}",
            "analytics/analytics.proto",
        ],
        source,
        "protoc (the Go stubs of analytics.proto)",
    )


def grpc_go_client() -> Path:
    """The scheduler-style Go client of the AnalyticsService, its stubs generated from our proto."""
    source = CLIENTS / "grpc-go"
    proto = REPO / "proto"
    binary = TOOLS / "bin" / "grpc-go-check"
    stamp = binary.with_name(binary.name + ".sha256")
    digest = _digest(source / "go.mod", source / "go.sum", source / "main.go", proto / "analytics" / "analytics.proto")
    if not (binary.is_file() and stamp.is_file() and stamp.read_text() == digest):
        go = _need("go", "golang-go")
        env = {"GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "auto"}
        plugins = _go_protoc_plugins(go, env)
        package = "workflow-analytics/tests/clients/grpc-go"
        _go_stubs(plugins, source, package, f"Manalytics/analytics.proto={package}/analyticspb")
        binary.parent.mkdir(parents=True, exist_ok=True)
        _run([go, "build", "-o", str(binary), "."], source, "go build (grpc-go client)", env=env)
        stamp.write_text(digest)
    return binary


def scheduler_go_client() -> Path:
    """The documentation's Go code (tests/clients/scheduler-go), against stubs generated as the
    scheduler generates them: no flag naming their import path, which the proto's go_package gives."""
    source = CLIENTS / "scheduler-go"
    binary = TOOLS / "bin" / "scheduler-go-check"
    stamp = binary.with_name(binary.name + ".sha256")
    inputs = [source / name for name in ("go.mod", "go.sum", "main.go", "usecases.go")]
    digest = _digest(*inputs, REPO / "proto" / "analytics" / "analytics.proto")
    if not (binary.is_file() and stamp.is_file() and stamp.read_text() == digest):
        go = _need("go", "golang-go")
        env = {"GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "auto"}
        plugins = _go_protoc_plugins(go, env)
        shutil.rmtree(source / "pkg", ignore_errors=True)
        _go_stubs(plugins, source, "github.com/hitesh22rana/chronoverse")
        binary.parent.mkdir(parents=True, exist_ok=True)
        _run([go, "build", "-o", str(binary), "."], source, "go build (the documentation's Go code)", env=env)
        stamp.write_text(digest)
    return binary


# The code generators the Go stubs need, at the versions tests/clients/grpc-go/go.mod names as tools.
GO_PROTOC_PLUGINS = ("google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc")


def node_client() -> Path:
    """The folder of the @clickhouse/client check script, with its node_modules installed by npm ci."""
    folder = CLIENTS / "node"
    stamp = folder / "node_modules" / ".lock-sha256"
    digest = _digest(folder / "package.json", folder / "package-lock.json")
    if not (stamp.is_file() and stamp.read_text() == digest):
        npm = _need("npm", "npm")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], folder, "npm ci (@clickhouse/client)")
        stamp.write_text(digest)
    _need("node", "nodejs")
    return folder


def main() -> int:
    failed = False
    clients = (
        ("JDBC driver", jdbc_classpath),
        ("clickhouse-go", go_client),
        ("grpc-go client", grpc_go_client),
        ("the documentation's Go code", scheduler_go_client),
        ("Node client", node_client),
    )
    for name, install in clients:
        try:
            install()
        except ToolUnavailable as error:
            failed = True
            print(f"note: the {name} tests cannot run: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
