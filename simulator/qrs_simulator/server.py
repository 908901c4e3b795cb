"""HTTPS server (mutual TLS) around QrsApi, with latency, faults, request statistics and control endpoints."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import QrsApi, Request, Response, json_response, text
from .certs import ensure_certs, server_context
from .model import JSON
from .scenario import build_from_scenario
from .state import SimState
from .synthetic import build_synthetic

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
DROP_SHARE = 0.25  # of the faulted requests, this share is a dropped connection; the rest get a 503
HANDSHAKE_TIMEOUT = 10.0


class Stats:
    """Counts every /qrs request received (served, refused or faulted) by `METHOD /path/{id}`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, method: str, path: str) -> None:
        key = f"{method} {stats_path(path)}"
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def stats_path(path: str) -> str:
    """Lower-cased (QRS paths are case-insensitive), GUIDs as `{id}`, no trailing slash."""
    return _GUID.sub("{id}", path.lower()).rstrip("/") or "/"


class Faults:
    """Decides, before anything else happens to a request, whether it is answered with a fault."""

    def __init__(self, rate: float, seed: int | None) -> None:
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """None (serve it), "503" or "drop"."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return "drop" if self._rng.random() < DROP_SHARE else "503"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "QRS-Simulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: SimServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark makes tens of thousands of requests."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        lowered = url.path.lower()
        if lowered == "/qrs" or lowered.startswith("/qrs/"):
            self._qrs(url.path, url.query, body)
        elif lowered.startswith("/__sim/"):
            self._send(self.server.control(self.command, lowered))
        else:
            self._send(text(404, "Not found"))

    def _qrs(self, path: str, query: str, body: bytes) -> None:
        server = self.server
        server.stats.count(self.command, path)
        fault = server.faults.draw()
        if server.latency > 0:
            time.sleep(server.latency)
        if fault == "drop":
            self.close_connection = True  # no response at all: the client sees the connection close
            return
        if fault == "503":
            self._send(text(503, "Service Unavailable (simulated fault)"))
            return
        params = {name.lower(): value for name, value in parse_qsl(query, keep_blank_values=True)}
        request = Request(self.command, path, params, self.headers, body)  # type: ignore[arg-type]
        try:
            response = server.api.handle(request)
        except Exception:  # a simulator bug must still answer, or clients would take it for a network fault
            traceback.print_exc()
            response = text(500, "Internal error in the QRS simulator")
        self._send(response)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.status != 204:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(response.length))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if response.status != 204:
            for chunk in response.chunks():
                self.wfile.write(chunk)


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: QrsApi, context: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.context = context
        self.stats = Stats()
        self.faults = Faults(0.0, None)
        self.latency = 0.0
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the worker thread, so a slow or refused client never blocks accept()."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go out as separate writes
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # no or untrusted client certificate: the handshake fails and the client is refused
        with self._open_lock:
            self._open.add(conn)
        try:
            with contextlib.suppress(OSError):  # the client went away
                self.RequestHandlerClass(conn, client_address, self)  # type: ignore[arg-type]
        finally:
            with self._open_lock:
                self._open.discard(conn)
            _close(conn)

    def close_connections(self) -> None:
        """Wake idle keep-alive handlers so they end; each handler thread closes its own socket."""
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)  # plain TCP shutdown: SSLSocket's drops its state

    def control(self, method: str, path: str) -> Response:
        """`/__sim/...`: statistics and state, for tests, demos and benchmarks (never faulted or delayed)."""
        routes = {
            ("GET", "/__sim/stats"): lambda: {"requests": self.stats.snapshot()},
            ("POST", "/__sim/reset-stats"): self._reset_stats,
        }
        if (method, path.rstrip("/")) == ("GET", "/__sim/state"):
            return Response(200, self.api.state.dump_json())
        handler = routes.get((method, path.rstrip("/")))
        if handler is not None:
            return json_response(handler())
        if path.rstrip("/") in {route_path for _, route_path in routes} | {"/__sim/state"}:
            return text(405, "Method not allowed")
        return text(404, "Not found")

    def _reset_stats(self) -> JSON:
        self.stats.reset()
        return {"requests": {}}


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()


class Simulator:
    """An in-process QRS simulator on a background thread; also a context manager.

    Give exactly one of `scenario` (a CONTRACT section 2 dict), `users` (a synthetic site, with `seed`) or a
    prebuilt `state`. Without `certs_dir` a temporary directory is used (and removed by stop()).
    """

    def __init__(
        self,
        scenario: JSON | None = None,
        *,
        users: int | None = None,
        seed: int = 0,
        state: SimState | None = None,
        certs_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int | None = None,
        server_name: str | None = None,
    ) -> None:
        if sum(source is not None for source in (scenario, users, state)) != 1:
            raise ValueError("give exactly one of scenario, users or state")
        if state is None:
            state = build_from_scenario(scenario) if scenario is not None else build_synthetic(users or 0, seed)
        self.state = state
        self._temp_dir = None if certs_dir is not None else tempfile.mkdtemp(prefix="qrs-sim-certs-")
        self.certs = ensure_certs(certs_dir or self._temp_dir or "", server_name)
        self.host = host
        self._server = SimServer((host, port), QrsApi(state), server_context(self.certs))
        self._server.faults = Faults(fault_rate, fault_seed)
        self._server.latency = latency_ms / 1000
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def certs_dir(self) -> Path:
        return self.certs.directory

    @property
    def client_cert(self) -> tuple[str, str]:
        """(client.pem, client_key.pem), as `requests` takes for `cert=`."""
        return str(self.certs.client), str(self.certs.client_key)

    @property
    def ca_file(self) -> str:
        """root.pem, as `requests` takes for `verify=`."""
        return str(self.certs.root)

    @property
    def fault_rate(self) -> float:
        return self._server.faults.rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        self._server.faults.rate = rate

    @property
    def latency_ms(self) -> float:
        return self._server.latency * 1000

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self._server.latency = value / 1000

    def stats(self) -> dict[str, int]:
        return self._server.stats.snapshot()

    def reset_stats(self) -> None:
        self._server.stats.reset()

    def start(self) -> Simulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="qrs-simulator", daemon=True
            )  # a short poll interval makes stop() quick
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.close_connections()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
