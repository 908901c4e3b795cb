"""The audit trail: DynamoDB (``AUDIT_TABLE``) in AWS, a JSON Lines file locally. Both take the same records.

Records are plain dicts (``kind`` one of ``run``, ``decision``, ``release-intent``, ``release-outcome``,
``snapshot``):
- ``run``: ``runId, actor, dryRun, startedAt, finishedAt, status (running|finished|aborted|failed), configHash,
  summary, capExceeded, aborted, error``; written at the start and overwritten at the end, so a run that died stays
  ``running``.
- ``decision`` (one per allocation whose action is not ``keep``, when ``auditLog.enable``), ``release-intent``
  (before the DELETE) and ``release-outcome`` (after it; always written, whatever ``auditLog.enable`` says):
  ``runId, at, actor, dryRun, allocationId, licenseType, userDirectory, userId, userName, action, reason,
  daysInactive, lastUsed``.
  An intent without an outcome is a release interrupted between the two. ``auditLog.includeUserDetails: false``
  drops ``userName``: only ids remain.

DynamoDB key design (one table, on-demand; the SAM template creates exactly this, see ``TABLE_SCHEMA``):

=======================  ===============================  ==============================================
record                   pk / sk                          GSI keys
=======================  ===============================  ==============================================
run                      ``RUN#<runId>`` / ``RUN``        byTime: ``RUNS#<YYYY-MM>`` / ``<startedAt>#<runId>``;
                                                          byUser, while running: ``OPEN#RUNS`` / ``<startedAt>``
decision                 ``RUN#<runId>`` /                byUser: ``USER#<dir>\\<userid>`` (casefolded) /
                         ``DECISION#<type>#<allocId>``    ``<at>#<runId>#<kind>``
release-intent           ``RUN#<runId>`` /                byUser (as above); byTime, while open:
                         ``RELEASE#<allocId>#1-INTENT``   ``OPEN#RELEASES`` / ``<at>#<runId>#<allocId>``
release-outcome          ``RUN#<runId>`` /                byUser (as above); byTime, only when released:
                         ``RELEASE#<allocId>#2-OUTCOME``  ``RELEASES#<YYYY-MM>`` / ``<at>#<allocationId>``
lock (butler.lock)       ``LOCK#<name>`` / ``LOCK``       none
snapshot                 ``SNAPSHOTS#<YYYY>`` /           none
                         ``<YYYY-MM-DD>#<licenseType>``
warning                  ``WARNING#<dir>\\<userid>#<type>``  byUser (as above); byTime: ``WARNINGS`` /
                         / ``PERIOD#<inactive since>``    ``<inactive since>#<dir>\\<userid>#<type>``
hold                     ``HOLD#<dir>\\<userid>`` /       byTime, while set: ``HOLDS`` / ``<dir>\\<userid>``
                         ``HOLD``
hold-change, mail,       ``RUN#<runId>`` /                byUser (as above, when it names a user)
reinstate                ``<KIND>#<at>#<user or to>``
=======================  ===============================  ==============================================

A ``warning`` record is the state of one warning (``licenses/notices.py``): written ``sending`` before the mail
goes and rewritten ``sent`` or ``failed`` after it, under a key made of the user, the license type and the start of
the inactivity period, so no run sends the same warning twice. A ``hold`` is rewritten on each change (``active``
false once lifted); each change is also a ``hold-change`` record with its caller.

An intent is written ``open`` before the DELETE and rewritten closed with its confirmed outcome; a run record is
rewritten when the run ends. So the ``OPEN#`` partitions hold exactly what a crash left behind (``reconcile``).
A record written again replaces the earlier one (DynamoDB by key; the JSON Lines file by reading the last).

A ``snapshot`` (``butler.licenses.planning``: one per license type per UTC day, written by each collection, the
day's last one kept) lives in one partition per year: 90 days of history are one Query (two across a new year).

So: all records of a run = Query pk; one user's history = Query byUser; releases (or runs) in a time window =
Query byTime per month with a ``between`` on the sort key. Retention: TTL attribute ``expiresAt`` (epoch seconds,
``auditLog.retentionDays`` after the write; default 400). The lock may share the table (``LOCK_TABLE`` defaults to
``AUDIT_TABLE``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from butler.licenses.model import AuditSink, AuditTrail, Record, decision_record, iso
from butler.observability import traced

__all__ = ["AuditSink", "AuditTrail", "DynamoDbAuditSink", "JsonLinesAuditSink", "Record", "decision_record"]

# The table as CloudFormation declares it (AWS::DynamoDB::Table properties), for the template and the tests.
TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "GlobalSecondaryIndexes": [
        {"IndexName": index, "Projection": {"ProjectionType": "ALL"},
         "KeySchema": [{"AttributeName": f"{prefix}pk", "KeyType": "HASH"},
                       {"AttributeName": f"{prefix}sk", "KeyType": "RANGE"}]}
        for index, prefix in (("byUser", "gsi1"), ("byTime", "gsi2"))
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
}
KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expiresAt")
OPEN_RUNS, OPEN_RELEASES = "OPEN#RUNS", "OPEN#RELEASES"


def create_table(table_name: str, client: Any = None) -> None:
    """Create the audit table as the template declares it (for local runs against moto, the demo and tests)."""
    import boto3

    client = client or boto3.client("dynamodb")
    spec = {k: v for k, v in TABLE_SCHEMA.items() if k != "TimeToLiveSpecification"}
    client.create_table(TableName=table_name, **spec)
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=TABLE_SCHEMA["TimeToLiveSpecification"])


def _redact(record: Record, include_user_details: bool) -> Record:
    return record if include_user_details else {k: v for k, v in record.items() if k != "userName"}


# --- keys --------------------------------------------------------------------------------------------------------


def item_keys(record: Record) -> dict[str, str]:
    """The DynamoDB key attributes of a record (see the module docstring)."""
    if record["kind"] == "snapshot":
        return {"pk": f"SNAPSHOTS#{record['day'][:4]}", "sk": f"{record['day']}#{record['licenseType']}"}
    if record["kind"] in NOTICE_KINDS:
        return _notice_keys(record)
    kind, run_id = record["kind"], record["runId"]
    if kind == "run":
        keys = {"pk": f"RUN#{run_id}", "sk": "RUN",
                "gsi2pk": f"RUNS#{record['startedAt'][:7]}", "gsi2sk": f"{record['startedAt']}#{run_id}"}
        if record.get("status") == "running":
            keys |= {"gsi1pk": OPEN_RUNS, "gsi1sk": f"{record['startedAt']}#{run_id}"}
        return keys
    allocation = record["allocationId"]
    sk = {"decision": f"DECISION#{record['licenseType']}#{allocation}",
          "release-intent": f"RELEASE#{allocation}#1-INTENT",
          "release-outcome": f"RELEASE#{allocation}#2-OUTCOME"}[kind]
    keys = {"pk": f"RUN#{run_id}", "sk": sk,
            "gsi1pk": user_partition(record["userDirectory"], record["userId"]),
            "gsi1sk": f"{record['at']}#{run_id}#{kind}"}
    if kind == "release-outcome" and record["action"] == "release":
        keys |= {"gsi2pk": f"RELEASES#{record['at'][:7]}", "gsi2sk": f"{record['at']}#{allocation}"}
    if kind == "release-intent" and record.get("open"):
        keys |= {"gsi2pk": OPEN_RELEASES, "gsi2sk": f"{record['at']}#{run_id}#{allocation}"}
    return keys


NOTICE_KINDS = frozenset({"warning", "hold", "hold-change", "mail", "reinstate"})
WARNINGS, HOLDS = "WARNINGS", "HOLDS"


def _notice_keys(record: Record) -> dict[str, str]:
    """Keys of the records of user notices, holds and reinstatements (issue 12)."""
    kind, at = record["kind"], record["at"]
    user = user_partition(record["userDirectory"], record["userId"]) if record.get("userId") else None
    if kind == "warning":
        who = f"{user}#{record['licenseType']}"
        return {"pk": f"WARNING#{who}", "sk": f"PERIOD#{record['period']}", "gsi1pk": str(user),
                "gsi1sk": f"{at}#warning#{record['licenseType']}", "gsi2pk": WARNINGS,
                "gsi2sk": f"{record['period']}#{who}"}
    if kind == "hold":
        keys = {"pk": f"HOLD#{user}", "sk": "HOLD"}
        return keys | ({"gsi2pk": HOLDS, "gsi2sk": str(user)} if record.get("active") else {})
    target = user or ",".join(record.get("to") or [])
    keys = {"pk": f"RUN#{record['runId']}", "sk": f"{kind.upper()}#{at}#{target}#{record.get('allocationId') or ''}"}
    return keys | ({"gsi1pk": user, "gsi1sk": f"{at}#{record['runId']}#{kind}"} if user else {})


def latest(records: Iterable[Record]) -> list[Record]:
    """The last record written under each key, in order of first appearance (what DynamoDB holds)."""
    found: dict[tuple[str, str], Record] = {}
    for number, record in enumerate(records):
        try:
            keys = item_keys(record)
        except (KeyError, TypeError):  # a record of another shape: kept, never merged
            keys = {"pk": f"#{number}", "sk": ""}
        found[keys["pk"], keys["sk"]] = record
    return list(found.values())


def user_partition(directory: str, user_id: str) -> str:
    return f"USER#{directory.casefold()}\\{user_id.casefold()}"


def _months(start: datetime, end: datetime) -> Iterator[str]:
    month = start.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= end:
        yield f"{month:%Y-%m}"
        month = (month + timedelta(days=32)).replace(day=1)


# --- DynamoDB ------------------------------------------------------------------------------------------------


def _to_item(record: Record) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(json.dumps(record, default=str), parse_float=Decimal)
    return item


def _from_item(item: dict[str, Any]) -> Record:
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return {k: plain(v) for k, v in item.items() if k not in KEY_ATTRIBUTES}


class DynamoDbAuditSink:
    """Audit records in a DynamoDB table (boto3 honours ``AWS_ENDPOINT_URL`` itself)."""

    def __init__(self, table_name: str, *, retention_days: int = 400, include_user_details: bool = True,
                 resource: Any = None) -> None:
        import boto3

        self.table = (resource or boto3.resource("dynamodb")).Table(table_name)
        self.retention = timedelta(days=retention_days)
        self.include_user_details = include_user_details
        self._lock = threading.Lock()  # boto3 resources are not thread-safe; releases write from a thread pool

    def _item(self, record: Record) -> dict[str, Any]:
        expires = int((datetime.now(UTC) + self.retention).timestamp())
        return _to_item(_redact(record, self.include_user_details)) | item_keys(record) | {"expiresAt": expires}

    @traced("dynamodb write")
    def write(self, record: Record) -> None:
        item = self._item(record)
        with self._lock:
            self.table.put_item(Item=item)

    @traced("dynamodb write")
    def write_many(self, records: Iterable[Record]) -> None:
        with self._lock, self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for record in records:
                batch.put_item(Item=self._item(record))

    @traced("dynamodb query")
    def _query(self, **kwargs: Any) -> list[Record]:
        records: list[Record] = []
        while True:
            page = self.table.query(**kwargs)
            records += [_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return records
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def records_for_run(self, run_id: str) -> list[Record]:
        from boto3.dynamodb.conditions import Key

        return self._query(KeyConditionExpression=Key("pk").eq(f"RUN#{run_id}"))

    def records_for_user(self, directory: str, user_id: str) -> list[Record]:
        """One user's history, oldest first."""
        from boto3.dynamodb.conditions import Key

        return self._query(IndexName="byUser", KeyConditionExpression=Key("gsi1pk").eq(user_partition(directory,
                                                                                                       user_id)))

    def releases_between(self, start: datetime, end: datetime) -> list[Record]:
        """Released allocations (outcome records) in ``[start, end]``, oldest first."""
        from boto3.dynamodb.conditions import Key

        low, high = iso(start), f"{iso(end)}~"
        records: list[Record] = []
        for month in _months(start, end):
            records += self._query(IndexName="byTime", KeyConditionExpression=Key("gsi2pk").eq(f"RELEASES#{month}")
                                   & Key("gsi2sk").between(low, high))
        return records

    def snapshots_between(self, start: date, end: date) -> list[Record]:
        """The daily snapshots of ``start`` to ``end`` (inclusive), by day then type: one Query per year."""
        from boto3.dynamodb.conditions import Key

        records: list[Record] = []
        for year in range(start.year, end.year + 1):
            records += self._query(KeyConditionExpression=Key("pk").eq(f"SNAPSHOTS#{year:04d}")
                                   & Key("sk").between(start.isoformat(), f"{end.isoformat()}~"))
        return records

    def open_intents(self) -> list[Record]:
        """Release intents not yet closed by a confirmed outcome, oldest first."""
        from boto3.dynamodb.conditions import Key

        return self._query(IndexName="byTime", KeyConditionExpression=Key("gsi2pk").eq(OPEN_RELEASES))

    def open_runs(self) -> list[Record]:
        """Run records still ``running``, oldest first."""
        from boto3.dynamodb.conditions import Key

        return self._query(IndexName="byUser", KeyConditionExpression=Key("gsi1pk").eq(OPEN_RUNS))

    def warnings(self) -> list[Record]:
        """Every warning's state (one query; records expire with the retention)."""
        from boto3.dynamodb.conditions import Key

        return self._query(IndexName="byTime", KeyConditionExpression=Key("gsi2pk").eq(WARNINGS))

    def holds(self) -> list[Record]:
        """The holds set and not lifted (expired ones included: the reader compares the date)."""
        from boto3.dynamodb.conditions import Key

        return self._query(IndexName="byTime", KeyConditionExpression=Key("gsi2pk").eq(HOLDS))


# --- JSON Lines ----------------------------------------------------------------------------------------------


class JsonLinesAuditSink:
    """One JSON object per line, appended (``--audit-file``); a run's record appears at its start and its end."""

    def __init__(self, path: str | Path, *, include_user_details: bool = True) -> None:
        self.path = Path(path)
        self.include_user_details = include_user_details
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[Record]) -> None:
        lines = "".join(json.dumps(_redact(r, self.include_user_details), default=str) + "\n" for r in records)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)

    def records(self) -> list[Record]:
        """The records as the DynamoDB table would hold them: the last one written under each key."""
        if not self.path.exists():
            return []
        with self._lock:
            text = self.path.read_text(encoding="utf-8")
        return latest(json.loads(line) for line in text.splitlines() if line.strip())

    def records_for_run(self, run_id: str) -> list[Record]:
        return [r for r in self.records() if r.get("runId") == run_id]

    def records_for_user(self, directory: str, user_id: str) -> list[Record]:
        wanted = user_partition(directory, user_id)
        return [r for r in self.records() if r.get("kind") not in ("run", "snapshot", "hold") and r.get("userId")
                and user_partition(r["userDirectory"], r["userId"]) == wanted]

    def releases_between(self, start: datetime, end: datetime) -> list[Record]:
        low, high = iso(start) or "", iso(end) or ""
        return [r for r in self.records() if r.get("kind") == "release-outcome" and r.get("action") == "release"
                and low <= r["at"] <= high]

    def snapshots_between(self, start: date, end: date) -> list[Record]:
        low, high = start.isoformat(), end.isoformat()
        return sorted((r for r in self.records() if r.get("kind") == "snapshot" and low <= str(r["day"]) <= high),
                      key=lambda r: (str(r["day"]), str(r["licenseType"])))

    def open_intents(self) -> list[Record]:
        return sorted((r for r in self.records() if r.get("kind") == "release-intent" and r.get("open")),
                      key=lambda r: str(r["at"]))

    def open_runs(self) -> list[Record]:
        return [r for r in self.records() if r.get("kind") == "run" and r.get("status") == "running"]

    def warnings(self) -> list[Record]:
        return [r for r in self.records() if r.get("kind") == "warning"]

    def holds(self) -> list[Record]:
        return [r for r in self.records() if r.get("kind") == "hold" and r.get("active")]
