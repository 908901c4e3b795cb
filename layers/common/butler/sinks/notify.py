"""Release notices: one SNS message per released allocation (``NOTIFY_TOPIC_ARN``; optional).

The message attributes ``licenseType``, ``userDirectory`` and ``userId`` let subscriptions filter: an
administrators' mailbox takes them all, a forwarder that writes to the users themselves takes its directory's.
"""

from __future__ import annotations

from typing import Any, Protocol

from butler.licenses.policy import Decision

REASSIGN_NOTE = ("A license will be assigned again on the user's next use of Qlik Sense, "
                 "if the license rules allow it.")


class Notifier(Protocol):
    def release_notice(self, decision: Decision, *, run_id: str, actor: str) -> None: ...


def notice_text(decision: Decision, *, run_id: str, actor: str) -> tuple[str, str]:
    """(subject, message) of the notice for one release."""
    user = f"{decision.user_directory}\\{decision.user_id}"
    days = "unknown" if decision.days_inactive is None else f"{decision.days_inactive:.1f}"
    subject = f"Qlik Sense {decision.license_type} license released: {user}"
    subject = subject.encode("ascii", "replace").decode()[:100]  # SNS: printable ASCII, at most 100 characters
    message = "\n".join([
        f"The {decision.license_type} access allocation of {user} was released.",
        f"Days inactive: {days}",
        f"Reason: {decision.reason}",
        f"Allocation id: {decision.allocation.id}",
        f"Released by: {actor} (run {run_id})",
        "",
        REASSIGN_NOTE,
    ])
    return subject, message


class SnsNotifier:
    def __init__(self, topic_arn: str, client: Any = None) -> None:
        import boto3

        self.topic_arn = topic_arn
        self.client = client or boto3.client("sns")

    def release_notice(self, decision: Decision, *, run_id: str, actor: str) -> None:
        subject, message = notice_text(decision, run_id=run_id, actor=actor)
        self.client.publish(
            TopicArn=self.topic_arn, Subject=subject, Message=message,
            MessageAttributes={
                "licenseType": {"DataType": "String", "StringValue": decision.license_type},
                "userDirectory": {"DataType": "String", "StringValue": decision.user_directory or "-"},
                "userId": {"DataType": "String", "StringValue": decision.user_id or "-"},
            },
        )
