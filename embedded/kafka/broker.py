"""A real single-node Apache Kafka (KRaft) for local use and tests: its configuration and its process.

One JVM plays both KRaft roles (broker and controller) on loopback ports, with its data in one
directory that survives restarts. The jars come from embedded.kafka.jars.
"""

from __future__ import annotations

import base64
import logging
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core import names
from core.children import obey_stop_signals_and_die_with_parent
from core.ports import CannotListen, check_free
from core.settings.kafka import LocalKafkaSettings
from embedded.data_lock import DataDirectoryError, DataDirectoryLock
from embedded.kafka.class_data import ClassDataArchive
from embedded.kafka.jars import ensure_jars, find_java

log = logging.getLogger(__name__)

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# The JVM exits with 128 + SIGTERM once Kafka's shutdown hook has finished.
CLEAN_EXIT_CODES = (0, 128 + signal.SIGTERM)


class KafkaStartError(RuntimeError):
    """The broker process failed to start or to serve."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class KafkaBroker:
    """One Kafka JVM in both KRaft roles, listening on 127.0.0.1, with all its state in ``data_dir``.

    ``start()`` formats the storage on first use, starts the JVM and returns once the broker answers
    metadata requests; ``stop()`` sends SIGTERM (Kafka then shuts down cleanly) and kills after
    ``stop_timeout``. Restarting on the same ``data_dir`` keeps topics, messages and committed offsets.
    On Linux the JVM is stopped when the thread that started it ends, so start it from a long-lived thread.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        *,
        controller_port: int | None = None,
        jars_dir: Path = Path(".analytics/kafka"),
        heap: str = "512m",
        ready_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        class_data_archive: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.jars_dir = Path(jars_dir)
        self.heap = heap
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.class_data_archive = class_data_archive  # start from the JVM's class-data archive (class_data.py)
        self.process: subprocess.Popen | None = None
        self._class_data: ClassDataArchive | None = None  # set by start() when class_data_archive
        self._log_start = 0  # where this start's lines begin in the log file
        # One broker a data directory: a second one rewrote the first's server.properties and
        # opened its metadata log, which broke the running broker (timeouts, a kill to stop it).
        self._lock = DataDirectoryLock(self.data_dir)

    @classmethod
    def from_settings(cls, settings: LocalKafkaSettings) -> KafkaBroker:
        """The local broker the project's settings describe (`analytics kafka`, `up --with-kafka`)."""
        return cls(
            settings.resolved_kafka_data_dir,
            settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            jars_dir=settings.kafka_jars_dir,
            stop_timeout=settings.kafka_stop_timeout,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage_dir(self) -> Path:
        """Kafka's own log directory (topics and the KRaft metadata log)."""
        return self.data_dir / "storage"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def diagnosis(self) -> str:
        """The lines of this start's log that tell why it failed: the first error and the last words."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._log_start)
            lines = log_file.read().decode(errors="replace").splitlines()
        # Java stack frames say where, not why.
        lines = [line for line in lines if line.strip() and not line.startswith(("\tat ", "\t... "))]
        first_error = next((index for index, line in enumerate(lines) if " ERROR " in line), None)
        shown = (
            []
            if first_error is None or first_error >= len(lines) - 5
            else lines[first_error : first_error + 2] + ["..."]
        )
        return "\n".join(shown + lines[-5:]) + f"\n(whole log: {self.log_path})"

    def start(self) -> KafkaBroker:
        if self.running:
            return self
        self._check_ports()
        try:
            self._lock.acquire()
        except DataDirectoryError as error:
            raise KafkaStartError(f"{error} (ANALYTICS_KAFKA_DATA_DIR)") from None
        try:
            return self._start()
        except BaseException:
            if self.process is None or self.process.poll() is not None:
                self._lock.release()
            raise

    def _start(self) -> KafkaBroker:
        java = find_java()
        lib = ensure_jars(self.jars_dir)
        self._class_data = ClassDataArchive(lib, java) if self.class_data_archive else None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The controller port only has to be free: the single voter is named in the config, not in the data.
        self.controller_port = self.controller_port or free_port()
        properties = self.data_dir / "server.properties"
        properties.write_text(self._server_properties())
        with self.log_path.open("ab") as log_file:
            self._log_start = log_file.tell()
            log_file.write(f"\n=== starting Kafka on {self.bootstrap} at {time.ctime()} ===\n".encode())
            if not (self.storage_dir / "meta.properties").exists():
                self._format_storage(java, lib, properties, log_file)
            self.process = subprocess.Popen(
                [java, *self._jvm_options(self.heap), *self._class_data_options(write=True)]
                + ["-cp", str(lib / "*"), "kafka.Kafka", str(properties)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # signals reach the JVM only through stop()
                # SIGTERM reaches it even when this process ignores it, and it dies with this process.
                preexec_fn=obey_stop_signals_and_die_with_parent,
            )
        started = time.monotonic()
        self._wait_until_serving()
        log.info(
            "Kafka serves on %s after %.1f s (data in %s)", self.bootstrap, time.monotonic() - started, self.data_dir
        )
        return self

    def _check_ports(self) -> None:
        """Refuse a port another process listens on: the JVM would say so only seconds later, after a
        broker already on the port had answered for it."""
        wanted = [("ANALYTICS_KAFKA_PORT", self.port), ("ANALYTICS_KAFKA_CONTROLLER_PORT", self.controller_port)]
        if self.port == self.controller_port:
            raise KafkaStartError(
                f"ANALYTICS_KAFKA_PORT and ANALYTICS_KAFKA_CONTROLLER_PORT are both {self.port}: give each its own"
            )
        try:
            for variable, port in wanted:
                if port is not None:
                    check_free("127.0.0.1", port, variable, holder="a Kafka broker already running")
        except CannotListen as error:
            raise KafkaStartError(str(error)) from None

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop gracefully (SIGTERM), kill after ``timeout`` (default ``stop_timeout``); return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            timeout = self.stop_timeout if timeout is None else timeout
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("Kafka did not stop within %g s of SIGTERM; killing it", timeout)
                self.process.kill()
                self.process.wait()
        if self._class_data is not None:
            self._class_data.after_exit(clean=self.process.returncode in CLEAN_EXIT_CODES)
        self._lock.release()
        return self.process.returncode

    def restart(self) -> KafkaBroker:
        """Stop and start again on the same ports and data directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.storage_dir),
            # One node: the internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # One node gains nothing from 50 offsets partitions; creating them delays the first consumer group.
            "offsets.topic.num.partitions": "1",
            # A lone consumer should not wait 3 s for others to join its group.
            "group.initial.rebalance.delay.ms": "0",
            # The bridges' session timeout (ANALYTICS_KAFKA_SESSION_TIMEOUT_MS) may be as short as 1 s
            # here, for a local machine where a stopped bridge's partitions should move quickly (6 s by default).
            "group.min.session.timeout.ms": "1000",
            # After a crash the controller refuses the restarted broker until the old session expires (9 s by default).
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # Topics are made on purpose (`analytics topics`), so a typo is an error and not a new topic.
            "auto.create.topics.enable": "false",
            # Messages up to 8 MiB (Kafka's default is 1 MiB): the bridge takes any size, and a big
            # log line or a broken producer's blob should reach the landing tables or dead letters.
            "message.max.bytes": str(names.MAX_MESSAGE_BYTES),
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _format_storage(self, java: str, lib: Path, properties: Path, log_file) -> None:
        cluster_id = _new_cluster_id()
        command = [java, *self._jvm_options("256m"), *self._class_data_options(write=False)]
        command += ["-cp", str(lib / "*"), "kafka.tools.StorageTool"]
        command += ["format", "--cluster-id", cluster_id, "--config", str(properties)]
        log_file.flush()
        result = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, timeout=300)
        if result.returncode != 0:
            raise KafkaStartError(
                f"formatting Kafka storage in {self.storage_dir} failed (exit {result.returncode}):\n{self.diagnosis()}"
            )

    def _class_data_options(self, write: bool) -> list[str]:
        return [] if self._class_data is None else self._class_data.options(write)

    @staticmethod
    def _jvm_options(heap: str) -> list[str]:
        # A local single-node broker: the client compiler alone and the serial collector start it
        # in two thirds of the time on half the CPU (measured: 6.0 s and 11 CPU-s for a format and
        # a start, against 4.2 s and 5.6 CPU-s), and it still moves far more messages than the
        # view chain behind the bridge can take.
        return [
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Xms128m",
            f"-Xmx{heap}",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        ]

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        admin = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KafkaStartError(
                    f"Kafka exited with code {self.process.returncode} before serving on {self.bootstrap}:\n"
                    f"{self.diagnosis()}"
                )
            # Wait for the port first: librdkafka logs every refused connection.
            if admin is None and _port_open(self.port):
                admin = AdminClient({"bootstrap.servers": self.bootstrap}, logger=log)
            if admin is not None:
                try:
                    # The broker is listed once it has registered with the controller and been unfenced.
                    if admin.list_topics(timeout=1).brokers:
                        return
                except KafkaException:
                    pass
            time.sleep(0.1)
        self.stop()
        raise KafkaStartError(
            f"Kafka did not serve on {self.bootstrap} within {self.ready_timeout:g} s:\n{self.diagnosis()}"
        )


def _new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, as `kafka-storage random-uuid`."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return cluster_id


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
