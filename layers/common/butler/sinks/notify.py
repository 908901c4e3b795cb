"""Administrators' notices: one SNS digest per run (``NOTIFY_TOPIC_ARN``; optional), never one per release.

A 400-release run sends one message: the counts, the released users and the failures. The message attributes
``kind`` (``run-digest``), ``dryRun`` and ``failed`` let subscriptions filter (say, failures only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from butler.licenses.model import Decision, Notifier

__all__ = ["Notifier", "SnsNotifier", "digest_text"]

REASSIGN_NOTE = ("A license is assigned again on the user's next use of Qlik Sense if the license rules allow it; "
                 "`butler reinstate` gives it back at once.")
LISTED_MAX = 200  # users listed by name; SNS messages stay well under their 256 KB limit


def worth_sending(decisions: Sequence[Decision]) -> bool:
    return any(d.action in ("release", "failed") for d in decisions)


def digest_text(run_id: str, decisions: Sequence[Decision], *, actor: str, dry_run: bool,
                note: str | None = None) -> tuple[str, str]:
    """(subject, message) of one run's digest."""
    counts = Counter(d.action for d in decisions)
    released = [d for d in decisions if d.action == "release"]
    failed = [d for d in decisions if d.action == "failed"]
    subject = (f"Qlik Sense licenses: {len(released)} released, {len(failed)} failed"
               f"{' (dry run)' if dry_run else ''}")[:100]  # SNS: at most 100 characters
    lines = [f"Run {run_id} by {actor}{' (dry run)' if dry_run else ''}.",
             "Counts: " + ", ".join(f"{action} {n}" for action, n in sorted(counts.items()))]
    if note:
        lines.append(f"Note: {note}")
    lines += _section("Released", released) + _section("FAILED", failed)
    lines += ["", REASSIGN_NOTE]
    return subject.encode("ascii", "replace").decode(), "\n".join(lines)


def _section(title: str, decisions: Sequence[Decision]) -> list[str]:
    if not decisions:
        return []
    lines = ["", f"{title} ({len(decisions)}):"]
    for d in decisions[:LISTED_MAX]:
        days = "never used" if d.allocation.lastUsed is None else f"{d.days_inactive or 0:.1f} days inactive"
        lines.append(f"- {d.qualified_user} {d.license_type} ({days}): {d.reason}")
    if len(decisions) > LISTED_MAX:
        lines.append(f"... and {len(decisions) - LISTED_MAX} more (butler audit --run)")
    return lines


class SnsNotifier:
    def __init__(self, topic_arn: str, client: Any = None) -> None:
        import boto3

        self.topic_arn = topic_arn
        self.client = client or boto3.client("sns")

    def run_digest(self, run_id: str, decisions: Sequence[Decision], *, actor: str, dry_run: bool,
                   note: str | None = None) -> None:
        if not worth_sending(decisions) and not note:
            return
        subject, message = digest_text(run_id, decisions, actor=actor, dry_run=dry_run, note=note)
        failed = sum(1 for d in decisions if d.action == "failed")
        self.client.publish(
            TopicArn=self.topic_arn, Subject=subject, Message=message,
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": "run-digest"},
                "dryRun": {"DataType": "String", "StringValue": str(dry_run).lower()},
                "failed": {"DataType": "Number", "StringValue": str(failed)},
            },
        )
