"""The demo's chapter on telling users (issue 12): a small Qlik site, a local SMTP server (aiosmtpd), and time moved by
the evaluation's injected clock: a warning, the notice period, the release and its notice, then a reinstatement.

Runs inside ``butler_dev.demo`` (its moto server holds the audit table and the run lock)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from butler.licenses.model import iso

ADMINS = "qlik-admins@corp.example"


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if isinstance(message, EmailMessage):
            self.messages.append(message)
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@contextlib.contextmanager
def qrs_port(port: int) -> Iterator[None]:
    """The demo points QRS_PORT at its big site; this chapter's site has its own port meanwhile."""
    before = os.environ.get("QRS_PORT")
    os.environ["QRS_PORT"] = str(port)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("QRS_PORT", None)
        else:
            os.environ["QRS_PORT"] = before


def _stamp(moment: datetime) -> str:
    return str(iso(moment))


def scenario(last_used: datetime) -> dict[str, Any]:
    def person(user_id: str, address: str | None) -> dict[str, Any]:
        return {"userDirectory": "CORP", "userId": user_id, "name": user_id.title(),
                **({"email": address} if address else {}),
                "license": {"type": "professional", "createdDate": _stamp(last_used - timedelta(days=300)),
                            "lastUsed": _stamp(last_used)}}

    return {"licenses": {"professional": {"total": 10}, "analyzer": {"total": 10}},
            "users": [person("jdoe", "jdoe@corp.example"), person("nomail", None)]}


def write_config(workdir: Path, sim: Any, smtp_port: int) -> Path:
    certs = Path(sim.certs_dir)
    data = {"Butler": {
        "qrs": {"host": "127.0.0.1", "port": sim.port,
                "certificates": {"clientCert": str(certs / "client.pem"), "clientKey": str(certs / "client_key.pem"),
                                 "rootCa": str(certs / "root.pem")}},
        "licenseManagement": {
            "enable": True, "dryRun": False, "logLevel": "warning", "maxReleasePercent": 100,
            "abortAbovePercent": 100,
            "release": {"professional": {"inactivityDays": 30}, "analyzer": {"inactivityDays": 45}},
            "notifications": {"warnDaysBefore": 7, "requireWarning": True, "email": {
                "enable": True, "via": "smtp", "from": "qlik-licenses@corp.example",
                "smtp": {"host": "127.0.0.1", "port": smtp_port}, "hubUrl": "https://qlik.corp.example/hub",
                "adminAddresses": [ADMINS]}},
        },
    }}
    path = workdir / "notices.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(workdir: Path) -> None:
    from butler.wiring import holds, load_config, run_evaluate
    from qrs_simulator import Simulator

    last_used = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    with Simulator(scenario(last_used), certs_dir=workdir / "notice-certs") as sim, smtp_server() as (port, inbox), \
            qrs_port(sim.port):
        config = load_config(write_config(workdir, sim, port))
        print(f"   CORP\\jdoe (e-mail) and CORP\\nomail (none) last used Qlik Sense on {last_used:%Y-%m-%d}; "
              "professional threshold 30 days, warnDaysBefore 7, requireWarning true")
        seen = 0
        for label, days in (("threshold - 7 days", 23.05), ("the threshold", 30.0), ("notice run out", 30.1)):
            report = run_evaluate(config, now=last_used + timedelta(days=days), actor="demo")
            for d in report.decisions:
                print(f"   day {days:>5.2f} ({label}): {d.qualified_user:<12} {d.action:<15} {d.reason[:150]}")
            for message in inbox.messages[seen:]:
                print(f"   mail to {message['To']}: {message['Subject']}")
            seen = len(inbox.messages)
        answer = holds(config).reinstate("jdoe", "CORP", None, "demo")
        print(f"   butler reinstate 'CORP\\jdoe' -> {answer.licenseType} allocation {answer.allocationId} "
              f"(undoes the release of {answer.undoes})")
