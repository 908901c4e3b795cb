"""``butler serve``: the /v4 routes on 127.0.0.1, through the very resolver the api Lambda function uses.

Each HTTP request becomes an API Gateway REST proxy event (raw, still-encoded path; decoded query parameters, as
API Gateway delivers them); the resolver's proxy answer goes back as the HTTP response. The caller identity is
fixed (``local``): nothing a request carries can choose whom the audit records name.

Every answer is JSON, http.server's own included: a method no route declares is a 405 with ``Allow`` (never its
501 page), a Content-Length that is not a number, negative or above ``MAX_BODY`` is a 400, a malformed request
line or header a 400; each of these closes the connection, since the rest of the stream cannot be trusted.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import uuid
from collections.abc import Callable
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from butler.api.routes import DECLARED_METHODS, allowed_methods

LOOPBACK = "127.0.0.1"
MAX_BODY = 1024 * 1024  # no route takes a body; this only bounds what a client can make us read
REQUEST_TIMEOUT_SECONDS = 30  # a client that stalls mid-request is dropped, not waited for
# Characters the resolver's path matching accepts as they are; anything else is percent-encoded, as a browser does.
_PATH_SAFE = "/-._~()'!*:@,;=+&$%"


def proxy_event(method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload 1.0) for one local request."""
    parts = urlsplit(target)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    pairs = parse_qsl(parts.query, keep_blank_values=True, errors="replace")
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    text = body.decode("utf-8", errors="replace") if body else None
    request_id = str(uuid.uuid4())
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": headers or None, "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}", "httpMethod": method, "path": path, "stage": "local",
            "requestId": request_id, "identity": {"sourceIp": source_ip, "userArn": None, "caller": None},
        },
        "body": text, "isBase64Encoded": False,
    }


class _LocalContext:
    """The few LambdaContext attributes Powertools may read."""

    function_name = "butler-serve"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:butler-serve"
    aws_request_id = "local"


def make_server(app: APIGatewayRestResolver, port: int) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:port (0: any free port). One request at a time reaches the resolver: it keeps the
    current event on itself."""
    lock = threading.Lock()

    def resolve(event: dict[str, Any]) -> dict[str, Any]:
        with lock:
            return app.resolve(event, _LocalContext())  # type: ignore[arg-type]

    handler = type("Handler", (_Handler,), {"resolve": staticmethod(resolve)})
    return ThreadingHTTPServer((LOOPBACK, port), handler)


class BadRequest(Exception):
    """A request http.server accepted but this server will not read further."""


def target_path(target: str) -> str:
    """The path of a request target (origin or absolute form); ``BadRequest`` when it is no URL at all."""
    try:
        return urlsplit(target).path
    except ValueError:  # e.g. an unclosed "[" in an absolute-form target's host
        raise BadRequest("the request target is not a URL") from None


def body_length(headers: Message) -> int:
    """The request body's length from its headers; ``BadRequest`` when it cannot be trusted."""
    if headers.get("Transfer-Encoding"):
        raise BadRequest("chunked request bodies are not accepted; send Content-Length (no route takes a body)")
    values = headers.get_all("Content-Length") or []
    if len(set(values)) > 1:
        raise BadRequest("conflicting Content-Length headers")
    text = values[0].strip() if values else "0"
    if not text.isascii() or not text.isdigit():
        raise BadRequest(f"Content-Length is not a non-negative whole number: {text[:40]!r}")
    if int(text) > MAX_BODY:
        raise BadRequest(f"Content-Length {text[:40]} is above the {MAX_BODY}-byte limit (no route takes a body)")
    return int(text)


class _Handler(BaseHTTPRequestHandler):
    server_version = "butler-serve"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # an error about a malformed request line still gets a status line
    timeout = REQUEST_TIMEOUT_SECONDS
    resolve: Callable[[dict[str, Any]], dict[str, Any]]

    def parse_request(self) -> bool:
        """http.server's parsing, then methods no route declares are refused here (405), before any dispatch."""
        if not super().parse_request():
            return False
        if self.command in DECLARED_METHODS:
            return True
        try:
            allowed = allowed_methods(target_path(self.path)) or tuple(sorted(DECLARED_METHODS))
        except BadRequest:
            allowed = tuple(sorted(DECLARED_METHODS))
        self._fail(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command[:20]} not allowed; use {', '.join(allowed)}",
                   {"Allow": ", ".join(allowed)})
        return False

    def _answer(self) -> None:
        try:
            target_path(self.path)
            length = body_length(self.headers)
        except BadRequest as exc:
            self._fail(HTTPStatus.BAD_REQUEST, str(exc))
            return
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in self.headers.items()}
        result = self.resolve(proxy_event(self.command, self.path, headers, body, self.client_address[0]))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
        answer_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            answer_headers.setdefault(name, ", ".join(str(v) for v in values))
        self._send(int(result.get("statusCode", 500)), answer_headers, data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line or header, a request line too long) as JSON."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._fail(code, ": ".join(filter(None, [message or phrase, explain])))

    def _fail(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """A JSON error answer after which the connection closes: an unread body must not be taken for a request."""
        self.close_connection = True
        data = json.dumps({"message": message}).encode()
        self._send(status, {"Content-Type": "application/json", "Connection": "close", **(headers or {})}, data)

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = _answer  # whichever the routes declare (parse_request)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One JSON line per request on standard error."""
        raw = getattr(self, "path", "")  # unset when the request line itself was refused
        try:
            path = target_path(raw)[:200]
        except BadRequest:
            path = raw[:200]
        line = {"method": self.command, "path": path, "status": int(code) if str(code).isdigit() else code}
        print(json.dumps(line), file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: Any) -> None:
        print(json.dumps({"message": format % args}), file=sys.stderr, flush=True)


def serve(app: APIGatewayRestResolver, port: int) -> None:
    """Serve until SIGINT or SIGTERM (``OSError`` when the port cannot be bound)."""
    run(make_server(app, port))


def run(server: ThreadingHTTPServer) -> None:
    """Serve until SIGINT or SIGTERM; print ``READY http://127.0.0.1:PORT`` once listening."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    print(f"READY http://{host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
