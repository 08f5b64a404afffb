"""Ports the commands listen on: one taken by another process is refused at start, in one line naming the setting."""

from __future__ import annotations

import errno
import socket


def url_host(host: str) -> str:
    """A host as a URL holds it: an IPv6 address in brackets (``http://[::1]:8123``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class CannotListen(Exception):
    """An address a command would listen on is taken, not this machine's, or refused."""


def refusal(
    host: str, port: int, error: OSError, variable: str, host_variable: str = "", holder: str = ""
) -> CannotListen:
    """The one line for a failed bind: the port's variable when another process has it, else the host's.

    ``holder`` is the likeliest other process ("an embedded ClickHouse already running"), said as a guess.
    """
    taken = error.errno == errno.EADDRINUSE
    named = variable if taken or not host_variable else host_variable
    guess = f" ({holder}?)" if holder else ""
    advice = f"; another process has it{guess}, or choose another port" if taken else ""
    return CannotListen(f"cannot listen on {host}:{port} ({named}): {error.strerror or error}{advice}")


def bound(host: str, port: int, variable: str, host_variable: str = "", holder: str = "") -> socket.socket:
    """A socket bound to host:port, to listen on; ``CannotListen`` (see ``refusal``) when it cannot be."""
    # gRPC writes an IPv6 address in brackets ("[::]"), as in a URL; a socket takes it bare.
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    # As servers bind: a port left in TIME_WAIT by an earlier run is free, one listened on is not.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
    except OSError as error:
        listener.close()
        raise refusal(host, port, error, variable, host_variable, holder) from None
    return listener


def check_free(host: str, port: int, variable: str, host_variable: str = "", holder: str = "") -> None:
    """Refuse (``CannotListen``) a port another process listens on, before a server that would find out late starts."""
    bound(host, port, variable, host_variable, holder).close()
