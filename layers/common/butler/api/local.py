"""``butler serve``: the /v4 routes on 127.0.0.1, through the very resolver the api Lambda function uses.

Each HTTP request becomes an API Gateway REST proxy event (raw, still-encoded path; decoded query parameters, as
API Gateway delivers them); the resolver's proxy answer goes back as the HTTP response. The caller identity is
fixed (``local``): nothing a request carries can choose whom the audit records name.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

LOOPBACK = "127.0.0.1"
MAX_BODY = 64 * 1024
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


class _Handler(BaseHTTPRequestHandler):
    server_version = "butler-serve"
    protocol_version = "HTTP/1.1"
    resolve: Callable[[dict[str, Any]], dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"Content-Type": "application/json"}, b'{"message": "request body too large"}')
            self.close_connection = True
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

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One JSON line per request on standard error."""
        line = {"method": self.command, "path": urlsplit(self.path).path, "status": int(code) if str(code).isdigit()
                else code}
        print(json.dumps(line), file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: Any) -> None:
        print(json.dumps({"message": format % args}), file=sys.stderr, flush=True)


def serve(app: APIGatewayRestResolver, port: int) -> None:
    """Serve until SIGINT or SIGTERM; print ``READY http://127.0.0.1:PORT`` once listening."""
    import signal

    server = make_server(app, port)

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
