"""A throw-away InfluxDB 1.x server (Debian's ``influxd``) on loopback, for the tests, the benchmarks and the demo.

``start_influxd(folder)`` writes a config with its own meta/data/wal directories under ``folder``, free loopback
ports, no authentication and no reporting, starts ``influxd``, waits for ``/ping`` and returns ``(url, stop)``.
``query(url, q, db=...)`` runs InfluxQL and returns the series of the first statement.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  flux-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""


def influxd_binary() -> str | None:
    return shutil.which("influxd") or (str(Path("/usr/bin/influxd")) if Path("/usr/bin/influxd").exists() else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_influxd(folder: Path | str, timeout: float = 30.0) -> tuple[str, Callable[[], None]]:
    """Start influxd under ``folder``; returns its URL and a function that stops it."""
    binary = influxd_binary()
    if binary is None:
        raise RuntimeError("influxd not found: install Debian's influxdb (make services)")
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # a free port can be taken between choosing and binding it: try again
        http_port = free_port()
        config = root / "influxdb.conf"
        config.write_text(_CONFIG.format(root=root, rpc_port=free_port(), http_port=http_port))
        log = (root / "influxd.log").open("ab")
        process = subprocess.Popen([binary, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{http_port}"
        if _wait_ready(url, process, timeout):
            return url, _stopper(process, log)
        _stopper(process, log)()
        if attempt == 2:
            tail = (root / "influxd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"influxd did not answer /ping at {url}:\n{tail}")
    raise AssertionError("unreachable")


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/ping", timeout=1).status_code == 204:
                return True
        time.sleep(0.05)
    return False


def _stopper(process: subprocess.Popen[bytes], log: Any) -> Callable[[], None]:
    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()

    return stop


def query(url: str, q: str, db: str | None = None, epoch: str | None = None) -> list[dict[str, Any]]:
    """Run InfluxQL; the series of the first statement (``[]`` when it has none). Errors raise."""
    params = {"q": q, **({"db": db} if db else {}), **({"epoch": epoch} if epoch else {})}
    response = requests.post(f"{url}/query", params=params, timeout=30)
    response.raise_for_status()
    result = response.json()["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxQL error: {result['error']} ({q})")
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten series into dicts: columns, plus each series' tags."""
    return [{**s.get("tags", {}), **dict(zip(s["columns"], values, strict=True))}
            for s in series for values in s.get("values", [])]


def create_database(url: str, name: str) -> None:
    query(url, f'CREATE DATABASE "{name}"')
