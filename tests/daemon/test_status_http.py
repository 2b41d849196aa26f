"""The status page's server: Host check, read-only, JSON, SSE framing, and stalled clients dropped."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time

import pytest

from affetto.analysis.emotion import Capsule, Quadrant
from affetto.daemon import status_http
from affetto.daemon.config import DaemonConfig
from affetto.daemon.status_http import StatusPage, host_allowed, open_status_page
from affetto.daemon.status_snapshot import Snapshot, StatusBoard
from affetto.daemon.status_view import STALE_NS, StatusView, WarningTail
from affetto.errors import ConfigError

HAPPY = Capsule.of(Quadrant.Q1)


def snapshot(seq: int = 1, beat: float = 0.0, running: bool = True) -> Snapshot:
    return Snapshot(seq, time.monotonic_ns(), running, 128.0, beat, 4.0, "4/4", "midi", "harmonise", HAPPY, HAPPY)


class Board:
    """Stands in for the conductor's board: the test swaps ``current`` as the conductor would."""

    def __init__(self) -> None:
        self.current = snapshot()


@pytest.fixture
def board():
    return Board()


@pytest.fixture
def page(board):
    tail = WarningTail()
    view = StatusView(lambda: board.current, ports=lambda: {"in": "a in", "out": "a out"}, warnings=tail)
    with StatusPage("127.0.0.1", 0, view, tail=tail, period_s=0.02, keepalive_s=0.2) as page:
        page.start()
        yield page


def request(page, method: str, path: str, host: str | None = "default") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
    conn.putrequest(method, path, skip_host=True)
    if host is not None:
        conn.putheader("Host", f"127.0.0.1:{page.port}" if host == "default" else host)
    conn.endheaders()
    return conn.getresponse()


# -- Host ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080",
                                    "127.3.2.1:80", "studio.localhost:8080", "localhost.:8080"])
def test_loopback_hosts_are_allowed(header):
    assert host_allowed(header, "127.0.0.1")


@pytest.mark.parametrize("header", [None, "", "evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                    "localhost.evil.example", "192.168.1.20:8080", "[::1", "[fe80::1]:80"])
def test_other_hosts_are_refused(header):
    assert not host_allowed(header, "127.0.0.1")


def test_the_configured_host_is_allowed_and_every_interface_allows_addresses_only():
    assert host_allowed("studio.lan:8080", "studio.lan") and not host_allowed("evil.example", "studio.lan")
    assert host_allowed("192.168.1.20:8080", "192.168.1.20") and not host_allowed("192.168.1.21", "192.168.1.20")
    assert host_allowed("192.168.1.20:8080", "0.0.0.0") and host_allowed("[fe80::1]:80", "::")
    assert host_allowed(f"{socket.gethostname()}:8080", "0.0.0.0")
    assert not host_allowed("evil.example:8080", "0.0.0.0")


def test_a_request_naming_another_host_is_refused(page):
    for host in ("evil.example", f"rebound.example:{page.port}", None):
        response = request(page, "GET", "/status.json", host=host)
        assert response.status == 421, host
        assert b"bpm" not in response.read()


# -- read-only ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FROB"])
def test_other_methods_get_405(page, method):
    response = request(page, method, "/status.json")
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"


def test_unknown_paths_get_404(page):
    assert request(page, "GET", "/admin").status == 404


# -- what is served ----------------------------------------------------------------------------
def test_status_json_carries_the_figures(page, board):
    board.current = snapshot(beat=9.5)
    response = request(page, "GET", "/status.json?x=1")
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    doc = json.loads(response.read())
    assert (doc["bpm"], doc["bar"], doc["beat"], doc["running"], doc["mode"]) == (128.0, 3, 2.5, True, "harmonise")
    assert doc["emotion"]["quadrant"] == "Q1" and doc["ports"] == {"in": "a in", "out": "a out"}
    assert doc["warnings"] == [] and doc["stale"] is False


def test_a_snapshot_not_renewed_for_two_seconds_is_called_stale(board):
    view = StatusView(lambda: board.current, now_ns=lambda: board.current.t_ns + STALE_NS + 1)
    assert view.document()["stale"] is True
    assert StatusView(lambda: board.current, now_ns=lambda: board.current.t_ns + STALE_NS).document()["stale"] is False


def test_the_page_is_served_with_a_policy_that_admits_only_itself(page):
    response = request(page, "GET", "/")
    body = response.read()
    assert response.status == 200 and b"EventSource" in body
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # nothing fetched from elsewhere
    head = request(page, "HEAD", "/")
    assert head.status == 200 and head.read() == b"" and int(head.getheader("Content-Length")) == len(body)


def test_warnings_logged_under_affetto_are_shown(page):
    logging.getLogger("affetto.daemon.conductor").warning("bar %d not ready in time", 7)
    logging.getLogger("affetto.daemon.conductor").info("just a status line")
    warnings = json.loads(request(page, "GET", "/status.json").read())["warnings"]
    assert [(w["source"], w["message"]) for w in warnings] == [("conductor", "bar 7 not ready in time")]


# -- Server-Sent Events ------------------------------------------------------------------------
class Stream:
    """A raw client of /events that reads frames (events and comments) as they come."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        assert status.startswith(b"HTTP/1.0 200"), status
        self.headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            self.headers[key.lower()] = value.strip()

    def frame(self) -> list[bytes]:
        """The lines of the next frame (up to its blank line)."""
        lines = []
        while (line := self.file.readline()) != b"\n":
            assert line, "the stream ended"
            lines.append(line.rstrip(b"\n"))
        return lines

    def event(self) -> dict:
        """The next data event, skipping comments and the retry field."""
        while True:
            lines = self.frame()
            data = [line[len(b"data: "):] for line in lines if line.startswith(b"data: ")]
            if data:
                assert len(lines) == 1 and len(data) == 1  # one line of JSON per event
                return json.loads(data[0])

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_events_are_framed_and_sent_when_the_figures_change(page, board):
    stream = Stream(page.port)
    try:
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.frame() == [b"retry: 2000"]
        assert stream.event()["bar"] == 1
        board.current = snapshot(seq=2, beat=4.0)
        assert stream.event()["bar"] == 2
        # nothing changes now: only comments keep the stream open (keepalive_s is 0.2 s here)
        comment = stream.frame()
        assert comment == [b": nothing new"]
        board.current = snapshot(seq=3, beat=8.0)
        assert stream.event()["bar"] == 3
    finally:
        stream.close()


def test_too_many_streams_are_refused(board):
    view = StatusView(lambda: board.current)
    with StatusPage("127.0.0.1", 0, view, max_streams=1) as page:
        page.start()
        first = Stream(page.port)
        try:
            assert page.server.wait_counts(lambda s: s.streams == 1, 10)
            assert request(page, "GET", "/events").status == 503
        finally:
            first.close()


def test_a_client_that_stops_reading_is_dropped_and_costs_the_publisher_nothing():
    board = Board()
    big = "x" * 200_000  # every event is large, so an unread stream fills its buffers quickly

    class Fat(StatusView):
        def document(self):
            return dict(super().document(), padding=big)

    publishing = threading.Event()
    published = [0]

    def publisher() -> None:  # the conductor's side: it swaps snapshots, whatever the clients do
        while not publishing.is_set():
            board.current = snapshot(seq=published[0], beat=published[0] / 100)
            published[0] += 1
            publishing.wait(0.005)

    view = Fat(lambda: board.current)
    thread = threading.Thread(target=publisher, daemon=True)
    with StatusPage("127.0.0.1", 0, view, period_s=0.005, send_timeout_s=0.5) as page:
        page.start()
        thread.start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", page.port))
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{page.port}\r\n\r\n".encode())  # and never read
        try:
            assert page.server.wait_counts(lambda s: s.dropped == 1 and s.streams == 0, 30)
            seen = published[0]
            assert request(page, "GET", "/status.json").status == 200  # the server still answers
            assert seen > 10 and thread.is_alive()
        finally:
            publishing.set()
            sock.close()
    thread.join(5)
    assert published[0] >= seen


def test_closing_the_page_ends_its_streams(board):
    view = StatusView(lambda: board.current)
    page = StatusPage("127.0.0.1", 0, view, period_s=0.02).start()
    stream = Stream(page.port)
    assert page.server.wait_counts(lambda s: s.streams == 1, 10)
    page.close()
    assert page.server.wait_counts(lambda s: s.streams == 0, 10)
    with pytest.raises((AssertionError, OSError)):
        for _ in range(1000):
            stream.frame()  # the stream ends (or resets) once the page is closed
    stream.close()


# -- the daemon's side --------------------------------------------------------------------------
def test_the_page_is_off_by_default_and_loopback_when_on():
    config = DaemonConfig()
    assert config.status_port is None and config.status_host == "127.0.0.1"
    board = StatusBoard(config, HAPPY, 0)
    assert open_status_page(config, board) is None
    page = open_status_page(config.replace(status_port=0), board)
    try:
        assert page is not None and page.server.server_address[0] == "127.0.0.1"
        assert any(isinstance(h, WarningTail) for h in logging.getLogger("affetto").handlers)
    finally:
        page.close()
    assert not any(isinstance(h, WarningTail) for h in logging.getLogger("affetto").handlers)


def test_a_port_in_use_is_logged_and_the_daemon_goes_on(caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        config = DaemonConfig(status_port=taken.getsockname()[1])
        assert open_status_page(config, StatusBoard(config, HAPPY, 0)) is None
    finally:
        taken.close()
    assert "status page: cannot listen on 127.0.0.1 port" in caplog.text


def test_listening_beyond_loopback_says_who_can_reach_it(monkeypatch, caplog):
    opened = {}

    class Recorded:
        def __init__(self, host, port, view, tail=None):
            opened.update(host=host, port=port)
            self.url, self.port = f"http://{host}:{port}/", port

        def start(self):
            return self

    monkeypatch.setattr(status_http, "StatusPage", Recorded)
    config = DaemonConfig(status_port=8765, status_host="0.0.0.0")
    caplog.set_level(logging.INFO, logger="affetto.daemon.status_http")
    tails = list(logging.getLogger("affetto").handlers)
    try:
        open_status_page(config, StatusBoard(config, HAPPY, 0))
    finally:
        for handler in logging.getLogger("affetto").handlers:
            if handler not in tails:
                logging.getLogger("affetto").removeHandler(handler)
    assert opened == {"host": "0.0.0.0", "port": 8765}
    [record] = [r for r in caplog.records if "status page" in r.getMessage()]
    assert record.levelno == logging.WARNING and "every interface" in record.getMessage()
    assert "anyone who can reach this machine on port 8765" in record.getMessage()


@pytest.mark.parametrize(("key", "value"), [("status_port", -1), ("status_port", 65536), ("status_port", "80"),
                                            ("status_port", True), ("status_host", ""), ("status_host", "a b"),
                                            ("status_host", "http://x/")])
def test_status_settings_are_checked(key, value):
    with pytest.raises(ConfigError, match=key):
        DaemonConfig.from_dict({key: value})
