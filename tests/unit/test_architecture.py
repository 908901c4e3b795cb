"""The wall around the inner ring: ``butler.licenses`` imports no adapter and no I/O library, and its policy loads
none when imported (checked in a fresh interpreter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).parents[2] / "layers" / "common" / "butler" / "licenses"
# What the core may import from the rest of the package: Qlik's vocabulary (records and failure kinds), the
# configuration models, and the logger. Everything else (the QRS client, sinks, API, wiring) is an adapter.
ALLOWED = ("butler.licenses", "butler.config", "butler.schedule", "butler.qrs.models", "butler.qrs.errors",
           "butler.observability")
IO_LIBRARIES = ("requests", "urllib3", "boto3", "botocore", "influxdb_client", "smtplib", "socket")
CLIENT_LIBRARIES = ("requests", "urllib3", "boto3", "botocore", "influxdb_client")  # (the stdlib loads socket)


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_imports_no_adapter_and_no_io_library() -> None:
    offenders = {}
    for path in sorted(CORE.glob("*.py")):
        bad = {name for name in imports(path)
               if (name.startswith("butler") and not name.startswith(ALLOWED))
               or name.split(".")[0] in IO_LIBRARIES}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_the_policy_loads_no_io_library() -> None:
    probe = ("import sys, butler.licenses.policy, butler.licenses.model, butler.licenses.answers; "
             f"print(sorted(m for m in {CLIENT_LIBRARIES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
