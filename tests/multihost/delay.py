"""A user-space delay line: TCP proxies that hold each direction's bytes back for a while.

This kernel has no ``netem`` (``tc qdisc add ... netem delay`` fails: "Specified qdisc kind is
unknown"), so the multi-host rig gets its link delays here instead. One ``Route`` per service
of a host (its sshd, its PostgreSQL port): the delay line listens on ``listen`` (the rig's
bridge address, port 0 = any free one) and forwards every connection to ``target`` (the host's
own address), delaying each chunk of bytes, in each direction, by half the round trip of the
links it crosses:

- the target host's link (``set_rtt(host_address, seconds)``), always;
- the source's link too, when the connection comes from another rig host (its source address
  is in the link table): host to host costs two links, as in a star network of hosts around a
  switch. Connections from the bridge's own address (the benchmark process) cross one link.

So with every link at X, this machine to a host is a round trip of X, and host to host 2X, as
long as the hosts reach each other through the delay line too (give the nodes addresses that
point at it). A new connection also waits one round trip before the client's first bytes
set off (the TCP handshake a real link would cost). Chunks keep their order; the bandwidth
is whatever Python moves (hundreds of MB/s on loopback), with at most ``MAX_QUEUED`` chunks
of 64 KiB queued per direction.

Bounded lifetime: a ``DelayLine`` stops by itself ``lifetime`` seconds after it started
(closing every connection), and ``DelayProcess`` (the same in a child process, so that the
caller's GIL does not add to the delay) also stops when its parent goes away (stdin EOF).

    with DelayLine([Route("alpha:ssh", ("192.0.2.1", 0), ("192.0.2.11", 22))],
                   links={"192.0.2.11": 0.005}) as line:
        port = line.port("alpha:ssh")                      # ssh -p port 192.0.2.1

Standard library only; runs as ``python delay.py`` (a JSON spec on stdin) for DelayProcess.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["DelayLine", "DelayProcess", "Route", "measure_rtt"]

CHUNK = 64 * 1024
MAX_QUEUED = 256
DEFAULT_LIFETIME = 3600.0


@dataclasses.dataclass(frozen=True)
class Route:
    """Connections to ``listen`` go on to ``target`` (``host``, ``port``) through the line."""

    name: str
    listen: tuple[str, int]
    target: tuple[str, int]


class DelayLine:
    """The proxies of a set of routes, run by an asyncio loop in a thread of this process."""

    def __init__(self, routes: Iterable[Route], *, links: Mapping[str, float] | None = None,
                 lifetime: float = DEFAULT_LIFETIME) -> None:
        self.routes = {route.name: route for route in routes}
        self.links: dict[str, float] = dict(links or {})
        """Round-trip time (seconds) of each host's link, by the host's address."""
        self.lifetime = lifetime
        self.ports: dict[str, int] = {}
        self.connections = 0
        """Connections accepted so far (all routes)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._stop_event: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control
    def set_rtt(self, address: str, seconds: float) -> None:
        """The round trip of ``address``'s link from now on (new and open connections)."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self.links[address] = float(seconds)

    def set_all(self, seconds: float) -> None:
        """Every known link at ``seconds`` round trip."""
        for address in list(self.links):
            self.set_rtt(address, seconds)

    def port(self, name: str) -> int:
        """The port the route ``name`` listens on."""
        return self.ports[name]

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start(self, timeout: float = 10) -> DelayLine:
        """Bind every route and start forwarding (returns when listening)."""
        self._thread = threading.Thread(target=self._run, name="delay-line", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"delay line did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10) -> None:
        """Close every listener and connection and end the thread."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not self._stopped.is_set():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the line has stopped (by ``stop`` or its lifetime); True if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> DelayLine:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the loop
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
        finally:
            self._stopped.set()
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        servers = []
        try:
            for route in self.routes.values():
                server = await asyncio.start_server(
                    functools.partial(self._serve, route), host=route.listen[0],
                    port=route.listen[1], reuse_address=True)
                servers.append(server)
                self.ports[route.name] = server.sockets[0].getsockname()[1]
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), self.lifetime)
        finally:
            for server in servers:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for server in servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)

    def _one_way(self, route: Route, source: str) -> float:
        return (self.links.get(route.target[0], 0.0) + self.links.get(source, 0.0)) / 2

    async def _serve(self, route: Route, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        source = writer.get_extra_info("peername")[0]
        self._writers.add(writer)
        # A real connection costs a round trip (SYN, SYN-ACK) before the client can send:
        # the client's first bytes wait for it here, before they start their one-way trip.
        handshake = 2 * self._one_way(route, source)
        try:
            if handshake > 0:
                await asyncio.sleep(handshake)
            up_reader, up_writer = await asyncio.open_connection(*route.target)
        except (OSError, asyncio.CancelledError):
            self._writers.discard(writer)
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        def delay() -> float:  # read at each chunk: a new setting applies at once
            return self._one_way(route, source)

        try:
            await asyncio.gather(self._pipe(reader, up_writer, delay),
                                 self._pipe(up_reader, writer, delay))
        except asyncio.CancelledError:
            pass  # the line stops: the connection goes with it
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    delay: Callable[[], float]) -> None:
        """Copy reader to writer, each chunk sent ``delay()`` seconds after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_QUEUED)

        async def receive() -> None:
            try:
                while True:
                    data = await reader.read(CHUNK)
                    await queue.put((loop.time() + delay(), data))
                    if not data:
                        return
            except OSError:
                await queue.put((loop.time(), b""))

        async def send() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                try:
                    await writer.drain()
                except OSError:
                    return

        await asyncio.gather(receive(), send())


class DelayProcess:
    """A ``DelayLine`` in a child process (``python delay.py``): same interface, but the delay
    is not stretched by this process's own work holding the GIL. It stops with ``stop()``,
    after ``lifetime`` seconds, or when this process ends (its stdin closes)."""

    def __init__(self, routes: Iterable[Route], *, links: Mapping[str, float] | None = None,
                 lifetime: float = DEFAULT_LIFETIME, prefix: Sequence[str] = ()) -> None:
        self.routes = {route.name: route for route in routes}
        self.links = dict(links or {})
        self.lifetime = lifetime
        self.prefix = tuple(prefix)
        """Put before the child's command line, e.g. ``ip netns exec NS`` (the child then
        listens inside that network namespace)."""
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10) -> DelayProcess:
        spec = {"routes": [dataclasses.asdict(r) for r in self.routes.values()],
                "links": self.links, "lifetime": self.lifetime}
        self._proc = subprocess.Popen([*self.prefix, sys.executable,
                                       str(Path(__file__).resolve())],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(spec) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("delay process did not start")
        self.ports = json.loads(line)
        return self

    def _command(self, text: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(text + "\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ok":
            raise RuntimeError(f"delay process: {text!r} failed")

    def set_rtt(self, address: str, seconds: float) -> None:
        """The round trip of ``address``'s link from now on."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self.links[address] = seconds
        self._command(f"rtt {address} {seconds!r}")

    def set_all(self, seconds: float) -> None:
        """Every known link at ``seconds`` round trip."""
        for address in list(self.links):
            self.set_rtt(address, seconds)

    def port(self, name: str) -> int:
        return self.ports[name]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def stopped(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def wait(self, timeout: float | None = None) -> bool:
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float = 5) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> DelayProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def measure_rtt(address: tuple[str, int], *, rounds: int = 5) -> tuple[float, float]:
    """Median (connect, round trip) seconds to a PostgreSQL port, e.g. through the line.

    ``connect``: a TCP connect plus an SSLRequest answered ('N' or 'S'): what opening a
    connection costs before the startup packet. ``round trip``: then a GSSENCRequest answered
    on the same connection (PostgreSQL 12+ answers 'N' or 'G'; older servers close, measured
    all the same): one pure round trip, the "ping" reported beside each figure."""
    ssl_request = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
    gss_request = (8).to_bytes(4, "big") + (80877104).to_bytes(4, "big")
    connects, trips = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        with socket.create_connection(address, timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(ssl_request)
            sock.recv(1)
            answered = time.perf_counter()
            sock.sendall(gss_request)
            sock.recv(1)
            trips.append(time.perf_counter() - answered)
            connects.append(answered - started)
    connects.sort()
    trips.sort()
    return connects[len(connects) // 2], trips[len(trips) // 2]


def _child() -> None:
    """``python delay.py``: one JSON spec line on stdin; ports printed; then commands."""
    if sys.argv[1:2] == ["--measure"]:  # python delay.py --measure HOST PORT (in a netns)
        print(json.dumps(measure_rtt((sys.argv[2], int(sys.argv[3])))))
        return
    spec = json.loads(sys.stdin.readline())
    line = DelayLine([Route(r["name"], tuple(r["listen"]), tuple(r["target"]))
                      for r in spec["routes"]], links=spec["links"],
                     lifetime=float(spec["lifetime"])).start()
    print(json.dumps(line.ports), flush=True)
    parent = os.getppid()

    def commands() -> None:
        for command in sys.stdin:
            words = command.split()
            if words[:1] == ["rtt"] and len(words) == 3:
                line.set_rtt(words[1], float(words[2]))
                print("ok", flush=True)
            elif words[:1] == ["quit"]:
                break
            else:
                print("bad", flush=True)
        line.stop()  # stdin closed: the parent is done (or gone)

    threading.Thread(target=commands, daemon=True).start()
    while not line.wait(0.5):
        if os.getppid() != parent:
            line.stop()
    line.stop()


if __name__ == "__main__":
    _child()
