"""The status page's HTTP server: read-only, loopback unless asked, Host checked, never in the way.

``affetto run --status-port PORT`` serves (GET and HEAD only; other methods
get 405, other paths 404):

- ``/``: the page (``daemon/status_page.html``: an inline script and style,
  EventSource and SVG, nothing loaded from anywhere; a Content-Security-Policy
  holds it to that);
- ``/status.json``: the figures, for scripts;
- ``/events``: Server-Sent Events with the same figures whenever they change,
  at most every :data:`PERIOD_S`, and a comment every :data:`KEEPALIVE_S` when
  nothing changes.

Safety: it listens on ``status_host`` (``127.0.0.1`` by default) and logs who
can reach it when that is not a loopback address. A request whose ``Host``
header names neither a loopback name or address nor the configured host is
refused with 421, so a web page that rebinds its own DNS name to 127.0.0.1
cannot read the figures (:func:`host_allowed`). There is no write endpoint.

Never in the way: the server (stdlib ``ThreadingHTTPServer``) runs in its own
daemon thread and each request in its own; they read the conductor's
published snapshot and take no lock the conductor, the scheduler or a JACK
callback takes. An event stream writes from its own thread with a small send
buffer and a timeout: a browser that stops reading is dropped after
:data:`SEND_TIMEOUT_S`. At most :data:`MAX_STREAMS` streams are open at once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import logging
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from affetto.daemon.config import DaemonConfig
from affetto.daemon.status_snapshot import StatusBoard
from affetto.daemon.status_view import StatusView, WarningTail, describe_ports, page_html

log = logging.getLogger(__name__)

PERIOD_S = 0.25  # an event stream sends at most this often
KEEPALIVE_S = 5.0  # a comment line when nothing changed for this long (finds closed connections)
SEND_TIMEOUT_S = 5.0  # a write that cannot go out for this long drops the client
SEND_BUFFER = 64 * 1024  # the kernel's send buffer of an event stream
REQUEST_TIMEOUT_S = 10.0  # a client that does not finish its request in this long is let go
MAX_STREAMS = 8
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
WILDCARDS = ("0.0.0.0", "::", "")
ALLOWED = "GET, HEAD"


def is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host of a Host header, without its port: ``[::1]:80`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".").lower()


def host_allowed(header: str | None, configured: str) -> bool:
    """Whether a request's ``Host`` header names this server: a loopback name or address, or
    ``configured``. Listening on every interface (``0.0.0.0``, ``::``), an IP address or this
    machine's name is also ours (a rebinding attack needs a DNS name of its own)."""
    if not header:
        return False
    name = _host_name(header)
    if not name:
        return False
    if is_loopback(name) or name == configured.strip("[]").lower():
        return True
    if configured in WILDCARDS:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(name)
            return True
        own = socket.gethostname().lower()
        return name in (own, f"{own}.local", socket.getfqdn().lower())
    return False


def _csp(page: bytes) -> str:
    """A Content-Security-Policy that admits the page's own inline script and style, by hash, and nothing else."""
    hashes = {}
    for tag in ("script", "style"):
        found = re.search(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), page, re.S)
        digest = hashlib.sha256(found.group(1) if found else b"").digest()
        hashes[tag] = base64.b64encode(digest).decode()
    return (f"default-src 'none'; script-src 'sha256-{hashes['script']}'; style-src 'sha256-{hashes['style']}'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class StatusServer(ThreadingHTTPServer):
    """The HTTP server; :meth:`serve_forever` runs in :class:`StatusPage`'s thread."""

    daemon_threads = True  # a request's thread never keeps the daemon from ending
    request_queue_size = 16

    def __init__(
        self,
        address: tuple[str, int],
        view: StatusView,
        *,
        host: str,
        period_s: float = PERIOD_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        keepalive_s: float = KEEPALIVE_S,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.view = view
        self.host = host
        self.period_s = period_s
        self.send_timeout_s = send_timeout_s
        self.keepalive_s = keepalive_s
        self.max_streams = max_streams
        self.page = page_html()
        self.csp = _csp(self.page)
        self.closing = threading.Event()
        self.counts = threading.Condition()  # guards the counters below; nothing outside the server takes it
        self.streams = 0  # event streams open now
        self.dropped = 0  # event streams dropped because the client stopped reading
        super().__init__(address, StatusHandler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up in DNS (socket.getfqdn): not needed, and slow offline
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def count(self, name: str, delta: int) -> None:
        with self.counts:
            setattr(self, name, getattr(self, name) + delta)
            self.counts.notify_all()

    def wait_counts(self, predicate: Any, timeout: float) -> bool:
        """Wait until ``predicate(server)`` holds (tests, and anything that watches the streams)."""
        with self.counts:
            return self.counts.wait_for(lambda: predicate(self), timeout)

    def take_stream(self) -> bool:
        with self.counts:
            if self.streams >= self.max_streams:
                return False
            self.streams += 1
            self.counts.notify_all()
            return True


class StatusHandler(BaseHTTPRequestHandler):
    """One request: GET or HEAD of ``/``, ``/status.json`` or ``/events``; anything else refused."""

    server: StatusServer
    server_version = "affetto-status"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every other method (POST, PUT, DELETE, OPTIONS, anything)
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        if self._host_ok():
            self._send(405, b"read-only: GET and HEAD only\n", "text/plain; charset=utf-8", extra=(("Allow", ALLOWED),))

    def _host_ok(self) -> bool:
        if host_allowed(self.headers.get("Host"), self.server.host):
            return True
        self._send(421, b"this server answers to its own host names only\n", "text/plain; charset=utf-8")
        return False

    def _get(self, *, head: bool) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, self.server.page, "text/html; charset=utf-8", head=head,
                       extra=(("Content-Security-Policy", self.server.csp),))
        elif path == "/status.json":
            self._send(200, self.server.view.body(), "application/json", head=head)
        elif path == "/events":
            self._events(head=head)
        else:
            self._send(404, b"not found: /, /status.json and /events are here\n", "text/plain; charset=utf-8",
                       head=head)

    def _send(self, code: int, body: bytes, ctype: str, *, head: bool = False, extra: tuple = ()) -> None:
        self.send_response(code)
        self._common_headers(ctype, extra)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _common_headers(self, ctype: str, extra: tuple = ()) -> None:
        for key, value in (
            ("Content-Type", ctype),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            *extra,
        ):
            self.send_header(key, value)

    def _events(self, *, head: bool) -> None:
        srv = self.server
        if not srv.take_stream():
            self._send(503, b"too many event streams open\n", "text/plain; charset=utf-8", head=head,
                       extra=(("Retry-After", "5"),))
            return
        try:
            self.send_response(200)
            self._common_headers("text/event-stream")
            self.end_headers()
            if not head:
                self._stream(srv)
        finally:
            srv.count("streams", -1)

    def _stream(self, srv: StatusServer) -> None:
        """Send the document whenever it changed, from this request's own thread, until the client
        goes, stalls (dropped after ``send_timeout_s``) or the server closes."""
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.settimeout(srv.send_timeout_s)
        last = b""
        quiet_since = time.monotonic()
        try:
            self.wfile.write(b"retry: 2000\n\n")
            while not srv.closing.is_set():
                body = srv.view.body()
                if body != last:
                    self.wfile.write(b"data: " + body + b"\n\n")
                    last, quiet_since = body, time.monotonic()
                elif time.monotonic() - quiet_since >= srv.keepalive_s:
                    self.wfile.write(b": nothing new\n\n")
                    quiet_since = time.monotonic()
                srv.closing.wait(srv.period_s)
        except TimeoutError:
            srv.count("dropped", 1)
            log.debug("status page: %s stopped reading its event stream: dropped", self.client_address[0])
        except OSError as err:  # the browser went away
            log.debug("status page: event stream to %s ended: %s", self.client_address[0], err)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status page: %s " + format, self.client_address[0], *args)


class StatusPage:
    """The server and its thread, plus the warnings it shows; :meth:`close` undoes everything."""

    def __init__(self, host: str, port: int, view: StatusView, *, tail: WarningTail | None = None,
                 **options: Any) -> None:
        self.tail = tail
        self.server = StatusServer((host, port), view, host=host, **options)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="affetto-status", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        host = self.server.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> StatusPage:
        if self.tail is not None:
            logging.getLogger("affetto").addHandler(self.tail)
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.closing.set()
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)
        if self.tail is not None:
            logging.getLogger("affetto").removeHandler(self.tail)

    def __enter__(self) -> StatusPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_status_page(config: DaemonConfig, board: StatusBoard, ports: object = None) -> StatusPage | None:
    """The page ``config.status_port`` asks for (None when it is off). A port that cannot be had is
    logged as an error and the daemon plays on without a page: it is a view, the music comes first."""
    if config.status_port is None:
        return None
    tail = WarningTail()
    view = StatusView(lambda: board.current, ports=describe_ports(ports) if ports is not None else None,
                      warnings=tail)
    try:
        page = StatusPage(config.status_host, config.status_port, view, tail=tail)
    except OSError as err:
        log.error("status page: cannot listen on %s port %d: %s; playing on without it", config.status_host,
                  config.status_port, err.strerror or err)
        return None
    page.start()
    if is_loopback(config.status_host):
        log.info("status page: %s (this machine only)", page.url)
    else:
        log.warning("status page: %s listens on %s: anyone who can reach %s on port %d can read it "
                    "(read-only; requests must name that host or a loopback one)", page.url,
                    "every interface" if config.status_host in WILDCARDS else config.status_host,
                    "this machine" if config.status_host in WILDCARDS else config.status_host, page.port)
    return page
