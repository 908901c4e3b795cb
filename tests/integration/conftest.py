"""Integration fixtures: a real InfluxDB 1.x server (Debian's influxd on loopback, one per test session) and a
loopback HTTP server that records requests (for the exact shape of InfluxDB writes)."""

from __future__ import annotations

import contextlib
import itertools
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from butler.licenses.model import iso
from tests.support.influxd import create_database, query, start_influxd

_names = itertools.count(1)


@dataclass(frozen=True)
class InfluxServer:
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def query(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        return query(self.url, q, db=db)


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    url, stop = start_influxd(tmp_path_factory.mktemp("influxd"))
    try:
        yield InfluxServer(url)
    finally:
        stop()


@pytest.fixture
def influx_db(influx_server: InfluxServer) -> str:
    """A fresh, empty database name on the session's server (created; tests never share data)."""
    name = f"butler_test_{next(_names)}"
    create_database(influx_server.url, name)
    return name


def influx_config(server: InfluxServer, database: str, **extra: Any) -> dict[str, Any]:
    """The ``influxDb`` section reaching ``server``'s ``database`` (merge under Butler)."""
    return {"enable": True, "version": 1, "host": "127.0.0.1", "port": server.port, "database": database, **extra}


@dataclass
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class CaptureServer:
    """A loopback HTTP(S) server recording every request; answers ``status`` (after ``delay`` seconds)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[Captured] = []
        self.status, self.body, self.delay = 204, b"", 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urlsplit(self.path)
                owner.requests.append(Captured("POST", url.path, parse_qs(url.query), dict(self.headers.items()),
                                               self.rfile.read(length)))
                time.sleep(owner.delay)
                with contextlib.suppress(OSError):  # the client may have given up (time-out tests)
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:  # (certificate, key): HTTPS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.stop()


# --- a small licensed site for the collector's tests --------------------------------------------------------------

SEED_DOC = Path(__file__).parents[1] / "fixtures" / "seed-license-management.md"


def seed_queries() -> dict[str, str]:
    """The seed document's sample Grafana queries, exactly as written there, by their comment line."""
    text = SEED_DOC.read_text(encoding="utf-8")
    block = text.split("### Sample Grafana Queries", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    queries: dict[str, str] = {}
    for chunk in block.split("-- ")[1:]:
        title, _, query = chunk.partition("\n")
        queries[title.strip()] = query.strip()
    return queries


def license_scenario(now: datetime) -> dict[str, Any]:
    """Professional 3 of 10, analyzer 2 of 20 (+1 quarantined), capacity minutes; three users idle >= 25 days."""

    def ago(days: float) -> str:
        return str(iso(now - timedelta(days=days)))

    def user(user_id: str, license_type: str | None = None, **license_: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"userDirectory": "CORP", "userId": user_id, "name": user_id.title()}
        if license_type:
            entry["license"] = {"type": license_type, **license_}
        return entry

    return {
        "licenses": {"professional": {"total": 10}, "analyzer": {"total": 20},
                     "analyzerTime": {"allocatedMinutes": 6000, "usedMinutes": 1200, "unavailableMinutes": 60}},
        "users": [
            user("alice", "professional", lastUsed=ago(40)),
            user("bob", "professional", lastUsed=ago(26)),
            user("carol", "professional", lastUsed=ago(2)),
            user("dave", "analyzer", lastUsed=None, createdDate=ago(30)),
            user("erin", "analyzer", lastUsed=ago(1)),
            user("frank", "analyzer", lastUsed=ago(10), quarantined=True),
            user("gina"),
        ],
    }
