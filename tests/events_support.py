"""Helpers for the events tests: a clock the test moves, a TCP forwarder that can appear late, a
client without a consumer thread, a sink that blocks, and senders that insert at the same moment
into a server that joins their inserts."""

from __future__ import annotations

import socket
import threading

from events import Batching, Client, MemorySink

# Every batch of asynchronous inserts waits the whole busy timeout, so senders started together fall in one.
JOINING_WINDOW = {"async_insert_use_adaptive_busy_timeout": "0", "async_insert_busy_timeout_max_ms": "2000"}


def together(actions) -> None:
    """Run the actions from threads of their own, all at the same moment; returns when all are done."""
    start = threading.Barrier(len(actions))

    def run(action):
        start.wait()
        action()

    senders = [threading.Thread(target=run, args=(action,)) for action in actions]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(60)


# 2026-11-24T08:00:00Z; whole seconds and binary fractions keep the arithmetic exact.
START = 1_795_507_200.0


class FakeClock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TcpForwarder:
    """Accepts connections on 127.0.0.1:`listen_port` and relays each to 127.0.0.1:`target_port`."""

    def __init__(self, listen_port: int, target_port: int):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_relay, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


def _relay(source: socket.socket, destination: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            destination.sendall(data)
        destination.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other side went away


def sync_client(batching: Batching | None = None, queue_size: int = 1000, clock: FakeClock | None = None):
    sink = MemorySink(batching or Batching(max_events=1000, interval=60.0))
    return Client(sink, queue_size=queue_size, clock=clock or FakeClock(), background=False), sink


class BlockingSink(MemorySink):
    """Blocks in emit until `release` is set, like a sink whose server stopped answering."""

    def __init__(self, batching: Batching):
        super().__init__(batching)
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit(self, batch):
        self.entered.set()
        self.release.wait(30)
        super().emit(batch)
