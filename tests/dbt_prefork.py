"""dbt for the suite without dbt's two seconds of imports in every process: forks of one that has them.

Every dbt process spends about 2 CPU-seconds importing dbt-core and the ClickHouse adapter before it
does anything, and the suite starts some fifty (`analytics migrate` and `up`, backfills, Dagster's
runs, the compile tests). Each pytest worker starts one server process that imports them once and
forks a child for every dbt command; what is run as dbt (`ANALYTICS_DBT_EXECUTABLE`, which child
processes inherit) is a launcher that hands the server its command line, working directory,
environment and standard streams, and exits with the child's exit code. The child is the dbt
command as the installed `dbt` would run it, with dbt-core's own entry point.

The launcher stays in front of its child: SIGINT, SIGTERM and SIGHUP it receives go on to the
child, and when the launcher dies (a timeout's SIGKILL, a killed process group) the child is
killed too. The server is the worker's own process and ends with the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LENGTH = struct.Struct("!I")
EXIT_CODE = struct.Struct("!i")
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LAUNCHER = """#!{python}
# dbt, forked by the suite's dbt server (tests/dbt_prefork.py) listening at the socket below.
import sys
sys.path.insert(0, {repo!r})
from tests.dbt_prefork import launch
sys.exit(launch({socket!r}))
"""


# -- the launcher: what runs as `dbt` --------------------------------------------------------------
def launch(socket_path: str) -> int:
    """Run this process's dbt command line in a child of the server; its exit code."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(socket_path)
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    streams = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
    socket.send_fds(connection, [LENGTH.pack(len(request))], streams)
    connection.sendall(request)
    forwarded: list[int] = []

    def forward(received: int, _frame) -> None:
        forwarded.append(received)
        connection.send(bytes([received]))

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    reply = b""
    while len(reply) < EXIT_CODE.size:
        chunk = connection.recv(EXIT_CODE.size - len(reply))
        if not chunk:
            if forwarded:  # the child died of it: so does the launcher, as dbt's own process would
                signal.signal(forwarded[-1], signal.SIG_DFL)
                os.kill(os.getpid(), forwarded[-1])
            print("dbt (forked by the suite's dbt server) ended without an exit code", file=sys.stderr)
            return 1
        reply += chunk
    return EXIT_CODE.unpack(reply)[0]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# -- the server ------------------------------------------------------------------------------------
def serve(listener: socket.socket) -> None:
    """Import dbt and parse the project once, then fork a child for each launcher that connects.
    Runs until killed."""
    import dbt.adapters.clickhouse.httpclient  # noqa: F401 - the client a command connects with
    import dbt.adapters.clickhouse.impl  # noqa: F401 - the adapter dbt loads for profiles.yml
    import dbt.cli.main  # noqa: F401 - what every dbt process imports first
    import dbt.task.build  # noqa: F401 - the tasks of `build`, `run`, `test` and `run-operation`

    _warm_up()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            os._exit(_run_child(connection))
        connection.close()


def _warm_up() -> None:
    """Parse the project once in the server, so that every fork starts with what dbt builds on its first
    parse and keeps for the life of a process: the JSON schemas it validates each node's config
    against (built from the dataclasses, 1.4 s of a profiled parse), the compiled codecs. Measured: a
    first `dbt parse` in a process took 3.0 CPU-seconds, the next ones 1.7 to 1.8.

    dbt supports invocations one after another in a process (each resets the adapters, flags and
    loggers it set up), and parsing connects to no database. The forks' own parses are dbt's as
    ever: this one's artifacts go to a scratch directory that is removed."""
    import tempfile

    from dbt.cli.main import cli
    from dbt_common.events.event_manager_client import cleanup_event_logger

    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"  # no tracking thread to fork with
    with tempfile.TemporaryDirectory(prefix="dbt-warm-up-") as scratch:
        arguments = ["parse", "--project-dir", str(REPO), "--profiles-dir", str(REPO)]
        arguments += ["--target-path", f"{scratch}/target", "--log-path", f"{scratch}/logs", "--quiet"]
        # Not the static parser (dbt-extractor, in Rust): used before a fork, it hangs in the forks.
        arguments.append("--no-static-parser")
        try:
            cli.main(args=arguments, prog_name="dbt")
        except SystemExit as stop:
            if stop.code:
                print(f"the warm-up parse failed ({stop.code}); the forks parse from cold", file=sys.stderr)
        cleanup_event_logger()


def _run_child(connection: socket.socket) -> int:
    code = 1
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        header, fds, _, _ = socket.recv_fds(connection, LENGTH.size, 3)
        request = json.loads(_read_exactly(connection, LENGTH.unpack(header)[0]))
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        threading.Thread(target=_follow_launcher, args=(connection,), daemon=True).start()
        code = _dbt(request["argv"][1:])
    except BaseException:  # noqa: BLE001 - reported on the command's stderr, and as its exit code
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            connection.sendall(EXIT_CODE.pack(code))
    return code


def _dbt(args: list[str]) -> int:
    """dbt-core's entry point, as the installed `dbt` script calls it (`sys.exit(cli())`)."""
    from dbt.cli.main import cli

    try:
        cli.main(args=args, prog_name="dbt")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    return 0


def _follow_launcher(connection: socket.socket) -> None:
    """Pass on the signals the launcher forwards; die with it."""
    while True:
        try:
            received = connection.recv(1)
        except OSError:
            received = b""
        if not received:
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), received[0])


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the launcher went away before its request was complete")
        data += chunk
    return data


@dataclass(frozen=True)
class ForkedDbt:
    launcher: Path  # the program to run as dbt
    server_pid: int  # the parent of every forked dbt


@contextlib.contextmanager
def started(directory: Path) -> Iterator[ForkedDbt]:
    """A dbt server for as long as the context lasts.

    The socket listens before the server has imported dbt, so the first launchers wait in its
    backlog rather than fail.
    """
    socket_path = directory / "dbt.sock"
    launcher = directory / "dbt"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(64)
    launcher.write_text(LAUNCHER.format(python=sys.executable, repo=str(REPO), socket=str(socket_path)))
    launcher.chmod(0o755)
    log = (directory / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.dbt_prefork", str(listener.fileno())],
        pass_fds=[listener.fileno()],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    listener.close()
    try:
        yield ForkedDbt(launcher, server.pid)
    finally:
        server.kill()
        server.wait()
        log.close()


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
