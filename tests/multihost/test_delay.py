"""The delay line (tests/multihost/delay.py) on loopback: bytes intact, delays as set, the
source's link counted for host-to-host traffic, and a bounded lifetime. No root needed."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from .delay import DelayLine, DelayProcess, Route, measure_rtt

HOST = "127.0.0.3"  # plays a rig host (the server's side); 127.0.0.1 the bench process
OTHER = "127.0.0.2"  # plays another rig host (a client with a link of its own)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer((HOST, 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HOST, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _round_trip(port: int, source: str | None = None) -> tuple[float, float]:
    """(connect until the first echo, one more echo) in seconds."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0) if source else None) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        first = time.perf_counter()
        sock.sendall(b"y")
        assert sock.recv(1) == b"y"
        return first - started, time.perf_counter() - first


def test_bytes_pass_intact_both_ways(echo: tuple[str, int]) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with DelayLine([Route("echo", ("127.0.0.1", 0), echo)],
                   links={HOST: 0.002}) as line:
        with socket.create_connection(("127.0.0.1", line.port("echo")), timeout=10) as sock:
            received = bytearray()

            def read() -> None:
                while len(received) < len(payload):
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return
                    received.extend(chunk)

            reader = threading.Thread(target=read)
            reader.start()
            sock.sendall(payload)
            reader.join(30)
        assert bytes(received) == payload
        assert line.connections == 1


def test_delay_is_the_link_round_trip(echo: tuple[str, int]) -> None:
    with DelayLine([Route("echo", ("127.0.0.1", 0), echo)],
                   links={HOST: 0.0}) as line:
        port = line.port("echo")
        _, none = _round_trip(port)
        line.set_rtt(HOST, 0.040)
        connect, trip = _round_trip(port)
    # Lower bounds are the point; upper bounds leave room for a busy 2-core machine.
    assert none < 0.03
    assert 0.040 <= trip < 0.040 + 0.06
    assert 0.080 <= connect < 0.080 + 0.08  # handshake round trip + the first echo


def test_host_to_host_crosses_both_links(echo: tuple[str, int]) -> None:
    # 127.0.0.2 plays another host: its own link is added both ways.
    with DelayLine([Route("echo", ("127.0.0.1", 0), echo)],
                   links={HOST: 0.020, OTHER: 0.020}) as line:
        _, from_gateway = _round_trip(line.port("echo"), source="127.0.0.1")
        _, from_host = _round_trip(line.port("echo"), source=OTHER)
    assert 0.020 <= from_gateway < 0.050  # one link
    assert 0.040 <= from_host < 0.080  # two links


def test_lifetime_bounds_the_line_and_its_connections(echo: tuple[str, int]) -> None:
    line = DelayLine([Route("echo", ("127.0.0.1", 0), echo)], lifetime=0.5).start()
    sock = socket.create_connection(("127.0.0.1", line.port("echo")), timeout=5)
    try:
        assert line.wait(5), "the line did not stop by itself"
        sock.settimeout(5)
        assert sock.recv(1) == b""  # the open connection was closed too
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", line.port("echo")), timeout=1).close()


def test_child_process_line(echo: tuple[str, int]) -> None:
    with DelayProcess([Route("echo", ("127.0.0.1", 0), echo)],
                      links={HOST: 0.0}, lifetime=60) as line:
        pid = line.pid
        line.set_rtt(HOST, 0.030)
        _, trip = _round_trip(line.port("echo"))
        assert 0.030 <= trip < 0.090
        with pytest.raises(ValueError, match="negative"):
            line.set_rtt(HOST, -1)
    assert line.stopped and pid is not None
    assert not os.path.exists(f"/proc/{pid}") or _zombie_or_gone(pid)
    quick = DelayProcess([Route("echo", ("127.0.0.1", 0), echo)], lifetime=0.5).start()
    try:
        assert quick.wait(10), "the child did not stop at the end of its lifetime"
    finally:
        quick.stop()


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_measure_rtt_through_the_line() -> None:
    # A stand-in PostgreSQL port: answers 'N' to each 8-byte request.
    listener = socket.create_server((HOST, 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while len(conn.recv(8)) == 8:
                conn.sendall(b"N")

    for _ in range(3):
        threading.Thread(target=serve, daemon=True).start()
    try:
        target = (HOST, listener.getsockname()[1])
        with DelayLine([Route("pg", ("127.0.0.1", 0), target)],
                       links={HOST: 0.025}) as line:
            connect, trip = measure_rtt(("127.0.0.1", line.port("pg")), rounds=3)
    finally:
        listener.close()
    assert 0.025 <= trip < 0.08
    assert 0.050 <= connect < 0.13
