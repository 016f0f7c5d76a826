"""``/metrics`` for Prometheus, with the standard library only (``http.server`` in a thread).

Each scrape reads the cluster afresh (``read()``, e.g. ``lambda: cluster.status()
.to_prometheus()``) in a worker thread and waits for it at most ``timeout`` seconds: a node
that hangs makes that scrape answer ``pgstream_scrape_success 0`` (reason ``timeout``) in time
instead of holding Prometheus up. Reads never overlap (a node's connection serves one query at
a time); a scrape that finds the previous read still running waits for it within its own
deadline. ``pgstream metrics`` prints one scrape; ``pgstream metrics --listen HOST:PORT``
serves them.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType

from pgstream.errors import InvalidAddress, InvalidInput, Unreachable
from pgstream.facts import identifiers
from pgstream.ops.check import Thresholds, annotate_status, check
from pgstream.ops.observe import cluster_status
from pgstream.ops.status import HistoryEntry
from pgstream.ops.view import ClusterView
from pgstream.render import prometheus

_log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 8.0
"""Seconds a scrape may take (Prometheus' own default scrape_timeout is 10 s)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9187"``, ``"[::1]:9187"`` or ``"localhost:9187"`` as ``(host, port)``."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or any(c.isspace() for c in host) or not port_text.isdigit():
        raise InvalidAddress(f"invalid listen address {text!r}: give HOST:PORT, e.g. "
                             "127.0.0.1:9187 or [::1]:9187")
    return host, identifiers.port(int(port_text))


def read_cluster(view: ClusterView, history: Sequence[HistoryEntry] = (), *,
                 findings: bool = True, thresholds: Thresholds | None = None,
                 timeout: float = DEFAULT_TIMEOUT / 2) -> str:
    """One scrape's exposition, the way ``pgstream metrics`` reads it: the status (as
    ``cluster.status()``) and, with ``findings``, ``check()``'s findings, judged by
    ``thresholds`` within ``timeout`` seconds. No fix plans are built, and the status' problem
    codes come from that same check instead of a second one."""
    report = check(view, thresholds=thresholds, timeout=timeout, plans=False) \
        if findings else None
    status = annotate_status(cluster_status(view, history=history), view, timeout=timeout,
                             report=report)
    return status.to_prometheus(report.findings if report is not None else None)


class Scraper:
    """Runs ``read`` once per scrape, bounded by ``timeout`` seconds; never two at once."""

    def __init__(self, read: Callable[[], str], timeout: float = DEFAULT_TIMEOUT) -> None:
        if not timeout > 0:
            raise InvalidInput(f"scrape timeout must be positive, not {timeout!r}")
        self.read = read
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgstream-scrape")
        self._pending: Future[str] | None = None
        self._lock = threading.Lock()
        self.succeeded = False
        """Whether the last scrape read the cluster."""

    def scrape(self) -> str:
        """One exposition: the cluster read now, or ``pgstream_scrape_success 0`` and why."""
        started = time.monotonic()
        deadline = started + self.timeout
        with self._lock:
            self.succeeded = False
            try:
                if self._pending is not None and not self._pending.done():
                    self._pending.exception(timeout=max(0.0, deadline - time.monotonic()))
                self._pending = self._pool.submit(self.read)
                text = self._pending.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                _log.warning("metrics: reading the cluster took longer than %g s", self.timeout)
                return prometheus.failure("timeout", time.monotonic() - started)
            except Unreachable as exc:
                _log.warning("metrics: %s", exc)
                return prometheus.failure("unreachable", time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - a scrape reports, the listener lives on
                _log.warning("metrics: reading the cluster failed: %s", exc)
                return prometheus.failure("error", time.monotonic() - started)
            self.succeeded = True
        return prometheus.scraped(text, time.monotonic() - started)

    def close(self) -> None:
        """Stop the worker (a read still running finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    scraper: Scraper
    server_version = "pgstream-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, kind, code = self.scraper.scrape().encode(), prometheus.CONTENT_TYPE, 200
        elif path == "/":
            body = b'<html><body><a href="/metrics">/metrics</a></body></html>\n'
            kind, code = "text/html; charset=utf-8", 200
        else:
            body, kind, code = b"not found: try /metrics\n", "text/plain; charset=utf-8", 404
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Requests go to the ``pgstream.ops.metrics`` logger at DEBUG, not to stderr."""
        _log.debug("metrics: %s %s", self.address_string(), format % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """``/metrics`` on ``host:port`` (port 0: any free port, see :attr:`address`), served by a
    background thread until :meth:`close` (or the end of a ``with`` block)."""

    def __init__(self, read: Callable[[], str], host: str = "127.0.0.1", port: int = 9187,
                 *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.scraper = Scraper(read, timeout)
        handler = type("Handler", (_Handler,), {"scraper": self.scraper})
        kind = _Server6 if ":" in host else _Server
        try:
            self._http = kind((host, port), handler)
        except OSError as exc:
            self.scraper.close()
            raise InvalidAddress(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        name="pgstream-metrics", daemon=True)
        self._thread.start()
        _log.info("metrics: serving http://%s:%d/metrics", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens, the real port when 0 was asked."""
        host, port = self._http.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop listening and wait for the serving thread."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)
        self.scraper.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def run(read: Callable[[], str], *, listen: str | None = None,
        timeout: float = DEFAULT_TIMEOUT, out: Callable[[str], object] = print) -> int:
    """``pgstream metrics``: print one scrape (exit 1 if it failed), or with ``listen`` serve
    ``/metrics`` until interrupted."""
    if listen is None:
        scraper = Scraper(read, timeout)
        try:
            text = scraper.scrape()
        finally:
            scraper.close()
        out(text.rstrip("\n"))
        return 0 if scraper.succeeded else 1
    host, port = parse_listen(listen)
    with MetricsServer(read, host, port, timeout=timeout) as server:
        out(f"serving http://{server.address[0]}:{server.address[1]}/metrics "
            "(Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0
