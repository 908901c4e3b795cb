"""A real headless Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``) for the tests of HTML pages.

``render_page(html, screenshot)`` loads a file, saves a PNG screenshot and returns the console messages the page
logged; ``dump_dom(html)`` returns the DOM Chromium built (``--dump-dom``). Each call starts a fresh browser with
its own empty ``--user-data-dir`` and the flags this closed-network machine needs, under a time-out.

How console messages are read: with ``--enable-logging=stderr --v=0`` Chromium writes every message of the page's
console to stderr, as (Chromium 156, Debian bookworm)::

    [2492:2492:1204/220256.984972:INFO:CONSOLE:1] "deliberate-error-1", source: file:///tmp/x.html (1)
    [2662:2662:1204/220257.896040:INFO:CONSOLE:1] "Executing inline script violates the following Content
        Security Policy directive ... The action has been blocked.", source: file:///tmp/x.html (1)
    [2816:2816:1204/220258.609630:INFO:CONSOLE:1] "Uncaught ReferenceError: undefinedFn is not defined", source: ...

Every level (``console.log`` as well as ``console.error``, CSP violations, uncaught exceptions) is logged as
``INFO``: the level is not in the line (older versions wrote ``ERROR:CONSOLE(1)`` or ``INFO:CONSOLE(1)``; both
spellings are parsed too). The pages under test carry no scripts at all, so *any* console message is an error:
``render_page`` returns them all. A message may span several lines; the pattern reads up to ``", source: URL (N)``.

Chromium missing is an error, never a skip: ``make test`` installs it (``make services``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

#: As the machine's notes say: without the background-networking flags Chromium keeps trying to reach Google's
#: hosts, which this closed network refuses. ``--disable-dev-shm-usage``: Debian's launcher means to add it when
#: /dev/shm is small, but its check fails on some machines (``[: ...: unexpected operator``), so we add it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-device-scale-factor=1",
    "--enable-logging=stderr",
    "--v=0",
)

_CONSOLE = re.compile(
    r"^\[[^\]\n]*:(?:INFO|WARNING|ERROR|FATAL|VERBOSE\d*):CONSOLE(?::\d+|\(\d+\))?\] "
    r'"(?P<message>.*?)", source: (?P<source>\S*) \((?P<line>\d+)\)$',
    re.MULTILINE | re.DOTALL,
)


class ChromiumError(RuntimeError):
    """Chromium is missing, crashed, or did not finish in time."""


def require_chromium() -> Path:
    """The Chromium binary; a clear error (a failed test, not a skipped one) when it is not installed."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        raise ChromiumError(
            f"{CHROMIUM} is missing: the HTML report is tested in Debian's headless Chromium. "
            "`make test` installs it (as root: apt-get update && apt-get install -y chromium)."
        )
    return CHROMIUM


def console_messages(stderr: str) -> list[str]:
    """The page's console messages in Chromium's stderr, each as ``message (source:line)``."""
    return [f"{m['message']} ({m['source']}:{m['line']})" for m in _CONSOLE.finditer(stderr)]


def _run(extra: list[str], html_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        command = [str(binary), *FLAGS, f"--user-data-dir={profile}", *extra, html_path.resolve().as_uri()]
        # Its own process group: on a time-out the browser and all its helpers (zygote, GPU, renderer) go.
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              errors="replace", start_new_session=True) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise ChromiumError(f"chromium did not finish within {timeout:g} s on {html_path}") from None
    if proc.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise ChromiumError(f"chromium exited with {proc.returncode} on {html_path}:\n{tail}")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def render_page(html_path: Path, screenshot: Path, *, width: int = 1280, height: int = 2000,
                timeout: float = 30.0) -> list[str]:
    """Load ``html_path`` in headless Chromium, save a PNG of the first ``width`` x ``height`` pixels to
    ``screenshot`` and return the console messages the page logged (all of them count as errors)."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    result = _run([f"--screenshot={screenshot.resolve()}", f"--window-size={width},{height}"], html_path, timeout)
    if not screenshot.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise ChromiumError(f"chromium wrote no screenshot of {html_path}:\n{tail}")
    return console_messages(result.stderr)


def dump_dom(html_path: Path, *, timeout: float = 30.0) -> str:
    """The serialized DOM Chromium built from ``html_path`` (after parsing, as ``--dump-dom`` prints it)."""
    return _run(["--dump-dom"], html_path, timeout).stdout
