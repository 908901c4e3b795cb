"""HTTPS server (mutual TLS) around QrsApi, with latency, faults, request statistics and control endpoints."""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import socket
import ssl
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import QrsApi, Request, Response, json_response, text
from .certs import ensure_certs, server_context
from .model import JSON
from .patches import PatchError, parse_patches, parse_triggers
from .scenario import build_from_scenario
from .state import Refused, SimState
from .synthetic import build_synthetic

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# A faulted request's kind is drawn among the enabled kinds with these weights (in this order), so the default
# `error,reset` keeps 3 in 4 errors and 1 in 4 resets.
FAULT_WEIGHTS = {"reset": 1, "lost-response": 1, "slow": 1, "error": 3}
FAULT_KINDS = tuple(FAULT_WEIGHTS)
DEFAULT_FAULT_KINDS = ("error", "reset")
FAULT_METHODS = ("GET", "POST", "PUT", "DELETE")
DEFAULT_SLOW_MS = 30000.0
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


def parse_fault_kinds(value: str | Iterable[str]) -> tuple[str, ...]:
    """`"error,reset"` or an iterable of kinds -> the kinds, checked (ValueError names the unknown ones)."""
    kinds = [kind.strip().lower() for kind in (value.split(",") if isinstance(value, str) else value)]
    kinds = [kind for kind in kinds if kind]
    unknown = [kind for kind in kinds if kind not in FAULT_WEIGHTS]
    if unknown or not kinds:
        raise ValueError(f"fault kinds must be among {', '.join(FAULT_KINDS)}, not {', '.join(unknown) or 'none'}")
    return tuple(kind for kind in FAULT_KINDS if kind in kinds)


def parse_fault_methods(value: str | Iterable[str]) -> frozenset[str]:
    """`"GET,POST"` or an iterable of methods -> the methods, checked (ValueError names the unknown ones)."""
    methods = [m.strip().upper() for m in (value.split(",") if isinstance(value, str) else value)]
    methods = [m for m in methods if m]
    unknown = [m for m in methods if m not in FAULT_METHODS]
    if unknown or not methods:
        raise ValueError(f"fault methods must be among {', '.join(FAULT_METHODS)}, not {', '.join(unknown) or 'none'}")
    return frozenset(methods)


class Faults:
    """Decides, before anything else happens to a request, whether it is answered with a fault and which."""

    def __init__(
        self,
        rate: float,
        seed: int | None,
        kinds: str | Iterable[str] = DEFAULT_FAULT_KINDS,
        methods: str | Iterable[str] = FAULT_METHODS,
        slow_ms: float = DEFAULT_SLOW_MS,
    ) -> None:
        self.rate = rate
        self.kinds = parse_fault_kinds(kinds)
        self.methods = parse_fault_methods(methods)
        self.slow_ms = slow_ms
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self, method: str) -> str | None:
        """None (serve it normally) or one of the enabled kinds ("error", "reset", "lost-response", "slow")."""
        if self.rate <= 0 or method not in self.methods:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            kinds = self.kinds
            point = self._rng.random() * sum(FAULT_WEIGHTS[kind] for kind in kinds)
            for kind in kinds:
                point -= FAULT_WEIGHTS[kind]
                if point < 0:
                    return kind
            return kinds[-1]


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
            self._send(self.server.control(self.command, lowered, body))
        else:
            self._send(text(404, "Not found"))

    def _qrs(self, path: str, query: str, body: bytes) -> None:
        server = self.server
        server.stats.count(self.command, path)
        fault = server.faults.draw(self.command)
        if server.latency > 0:
            server.stopping.wait(server.latency)
        if fault == "reset":
            self.close_connection = True  # no response at all: the client sees the connection close
            return
        if fault == "error":
            self._send(text(503, "Service Unavailable (simulated fault)"))
            return
        params = {name.lower(): value for name, value in parse_qsl(query, keep_blank_values=True)}
        response = server.serve(Request(self.command, path, params, self.headers, body))  # type: ignore[arg-type]
        if fault == "lost-response":
            self.close_connection = True  # carried out, but the answer never leaves
            return
        if fault == "slow":
            server.stopping.wait(server.faults.slow_ms / 1000)
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
        self.stopping = threading.Event()  # cuts latency and slow-fault waits short on stop()
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

    def serve(self, request: Request) -> Response:
        """Carry out one /qrs request. While triggers are pending, requests are handled one at a time and a
        trigger's patches are applied before the request that completes it is answered, so that no later
        request can see the state from before them."""
        state = self.api.state
        if not state.triggers:
            return self._handle(request)
        with state.trigger_lock:
            response = self._handle(request)
            state.after_request(request.method)
        return response

    def _handle(self, request: Request) -> Response:
        try:
            return self.api.handle(request)
        except Exception:  # a simulator bug must still answer, or clients would take it for a network fault
            traceback.print_exc()
            return text(500, "Internal error in the QRS simulator")

    def control(self, method: str, path: str, body: bytes = b"") -> Response:
        """`/__sim/...`: statistics, state and user patches, for tests, demos and benchmarks (never faulted or
        delayed, not counted)."""
        routes = {
            ("GET", "/__sim/stats"): lambda: {"requests": self.stats.snapshot()},
            ("POST", "/__sim/reset-stats"): self._reset_stats,
        }
        path = path.rstrip("/")
        if (method, path) == ("GET", "/__sim/state"):
            return Response(200, self.api.state.dump_json())
        if (method, path) == ("PATCH", "/__sim/users"):
            return self._patch_users(body)
        handler = routes.get((method, path))
        if handler is not None:
            return json_response(handler())
        if path in {route_path for _, route_path in routes} | {"/__sim/state", "/__sim/users"}:
            return text(405, "Method not allowed")
        return text(404, "Not found")

    def _patch_users(self, body: bytes) -> Response:
        """`PATCH /__sim/users` -> 200 `{"changed": N}`; 400 for a bad body, 404 for an unknown user (nothing
        changed in either case)."""
        try:
            patches = parse_patches(json.loads(body or b"null"))
            changed = self.api.state.patch_users(patches)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return text(400, "The request body is not valid JSON")
        except PatchError as err:
            return text(400, f"Bad patch {err}" if str(err).startswith("[") else f"Bad patch: {err}")
        except Refused as err:
            return text(err.status, str(err))
        return json_response({"changed": changed})

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
        fault_kinds: str | Iterable[str] = DEFAULT_FAULT_KINDS,
        fault_methods: str | Iterable[str] = FAULT_METHODS,
        slow_ms: float = DEFAULT_SLOW_MS,
        triggers: list[JSON] | None = None,
        server_name: str | None = None,
    ) -> None:
        if sum(source is not None for source in (scenario, users, state)) != 1:
            raise ValueError("give exactly one of scenario, users or state")
        faults = Faults(fault_rate, fault_seed, fault_kinds, fault_methods, slow_ms)  # checks before any work
        if state is None:
            state = build_from_scenario(scenario) if scenario is not None else build_synthetic(users or 0, seed)
        self.state = state
        if triggers is not None:
            self.triggers = triggers
        self._temp_dir = None if certs_dir is not None else tempfile.mkdtemp(prefix="qrs-sim-certs-")
        self.certs = ensure_certs(certs_dir or self._temp_dir or "", server_name)
        self.host = host
        self._server = SimServer((host, port), QrsApi(state), server_context(self.certs))
        self._server.faults = faults
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
    def fault_kinds(self) -> tuple[str, ...]:
        return self._server.faults.kinds

    @fault_kinds.setter
    def fault_kinds(self, kinds: str | Iterable[str]) -> None:
        self._server.faults.kinds = parse_fault_kinds(kinds)

    @property
    def fault_methods(self) -> frozenset[str]:
        return self._server.faults.methods

    @fault_methods.setter
    def fault_methods(self, methods: str | Iterable[str]) -> None:
        self._server.faults.methods = parse_fault_methods(methods)

    @property
    def slow_ms(self) -> float:
        return self._server.faults.slow_ms

    @slow_ms.setter
    def slow_ms(self, value: float) -> None:
        self._server.faults.slow_ms = value

    @property
    def triggers(self) -> list[JSON]:
        """The pending triggers, as given (scenario shape); setting replaces them, counting from then on."""
        return [trigger.raw for trigger in self.state.triggers]

    @triggers.setter
    def triggers(self, value: list[JSON]) -> None:
        self.state.set_triggers(parse_triggers(value))  # PatchError (a ValueError) / Refused(404) when wrong

    @property
    def selection_ttl(self) -> float:
        """Seconds a QRS selection lives after its last use."""
        return self._server.api.selection_ttl

    @selection_ttl.setter
    def selection_ttl(self, seconds: float) -> None:
        self._server.api.selection_ttl = seconds

    def patch_users(self, patches: list[JSON]) -> int:
        """What `PATCH /__sim/users` does, in process: the number of users changed."""
        return self.state.patch_users(parse_patches(patches))

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
        self._server.stopping.set()
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
