"""Running the local broker: in the foreground (`analytics kafka`) or as a component of `analytics up`."""

from __future__ import annotations

import signal
import threading

from embedded.kafka.broker import CLEAN_EXIT_CODES, KafkaBroker, KafkaStartError
from embedded.kafka.jars import kafka_version


def run_in_foreground(broker: KafkaBroker, announce=print) -> bool:
    """Start ``broker``, serve until SIGTERM or SIGINT, then stop it; return whether it stopped cleanly."""
    broker.start()  # until it serves, Ctrl-C and SIGTERM act as usual; the JVM dies with this process
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        announce(
            f"Kafka {kafka_version()} is ready for clients at {broker.bootstrap}; data in {broker.data_dir}, "
            f"log in {broker.log_path}; Ctrl-C or SIGTERM stops it"
        )
        while not stop_requested.wait(0.5):
            if not broker.running:
                raise KafkaStartError(
                    f"Kafka exited unexpectedly with code {broker.process.returncode}:\n{broker.diagnosis()}"
                )
        announce("stopping Kafka")
        return broker.stop() in CLEAN_EXIT_CODES
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class BrokerComponent:
    """A local broker as a component of `analytics up --with-kafka`.

    The JVM is tied to the thread that starts it (it gets SIGTERM when that thread ends), so the
    broker lives in a thread of its own for as long as the stack runs.
    """

    name = "local Kafka"

    def __init__(self, broker: KafkaBroker):
        self.broker = broker
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._own, name="kafka-broker", daemon=True)

    def _own(self) -> None:
        try:
            self.broker.start()
        except BaseException as error:  # noqa: BLE001 - handed to start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._stop.wait()
        self.broker.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def watch(self, failed) -> None:
        """Call ``failed(error)`` if the broker's JVM exits by itself (a crash, out of memory: it runs
        with ExitOnOutOfMemoryError), not on stop(): the stack went on with a bridge that only timed out."""
        process = self.broker.process

        def wait_for_an_exit() -> None:
            code = process.wait()
            if not self._stop.is_set():
                failed(RuntimeError(f"the broker exited with {code}; its log: {self.broker.log_path}"))

        if process is not None:
            threading.Thread(target=wait_for_an_exit, name="kafka-broker-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.broker.stop_timeout + 10)
