"""Live evaluations against the QRS simulator with its answers corrupted in flight (``tests.support.corrupting``):
a dropped, nulled or re-typed column or key, a flattened list, reordered or unknown columns, swapped ids, repeated
records and pages, cut-off, empty and HTML bodies, odd statuses.

Whatever the corruption, a run either stops with a one-line ``QrsError`` or releases a subset of what the clean
answers release (``EXPECTED_RELEASES``), never a protected user, and the command line never prints a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from butler import wiring
from butler.licenses.evaluate import EvaluationReport
from butler.qrs import QrsError
from qrs_simulator import Simulator
from qrs_simulator.certs import ensure_certs
from tests.conftest import config_data
from tests.support.corrupting import (
    ALLOCATION_KEYS,
    ALLOCATION_MUTATIONS,
    ANALYZER,
    BODY_MUTATIONS,
    KINDS,
    PROFESSIONAL,
    STATUSES,
    TABLE_COLUMNS,
    TABLE_MUTATIONS,
    USERS,
    CorruptingProxy,
    Corruption,
    Spoiler,
    install,
)
from tests.support.evaluate_scenario import EXPECTED_RELEASES, POLICY, PROTECTED, SCENARIO

ROOT = Path(__file__).parents[2]
LOCAL_ENV = ("AUDIT_TABLE", "LOCK_TABLE", "NOTIFY_TOPIC_ARN", "BUTLER_CONFIG", "AWS_ENDPOINT_URL")
ERROR_LIMIT = 500  # characters of a one-line error
# Users whose allocation the clean answers keep for a reason other than protection (too recent, quarantined).
KEPT = {"a.recent", "a.new", "a.quarantined", *(f"p.active{i}" for i in range(4)), *(f"a.active{i}" for i in range(3))}


@pytest.fixture(scope="module", autouse=True)
def local_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in LOCAL_ENV:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corrupted-certs")
    ensure_certs(directory)
    return directory


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrupted-runs")


# --- one corrupted live run --------------------------------------------------------------------------------------


@dataclass
class Run:
    """What a corrupted live run did to the simulator, and how it ended."""

    corruption: Corruption
    released: set[str] = field(default_factory=set)  # owners whose allocation is gone, or newly quarantined
    released_ids: set[str] = field(default_factory=set)
    error: str | None = None
    report: EvaluationReport | None = None
    applied: list[str] = field(default_factory=list)  # the requests whose answer was actually changed
    stats: dict[str, int] = field(default_factory=dict)

    def decision(self, user_id: str) -> tuple[str, str]:
        assert self.report is not None, self.error
        found = next(d for d in self.report.decisions if d.user_id == user_id)
        return found.action, found.reason


def sim_state(sim: Simulator) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{sim.url}/__sim/state", cert=sim.client_cert, verify=sim.ca_file,
                                          timeout=30).json()
    return answer


def allocations(sim: Simulator) -> dict[str, tuple[str, bool]]:
    """Allocation id -> (its owner's userId, quarantined)."""
    return {a["id"]: ((a.get("user") or {}).get("userId") or a.get("deletedUserId") or "", bool(a["quarantined"]))
            for a in sim_state(sim)["allocations"]}


def released_since(before: dict[str, tuple[str, bool]], after: dict[str, tuple[str, bool]]) -> set[str]:
    """The allocations a DELETE removed, or quarantined (QRS's answer to a DELETE of one used within 7 days)."""
    return {i for i, (_, quarantined) in before.items() if i not in after or (after[i][1] and not quarantined)}


def write_config(sim: Simulator, directory: Path, port: int | None = None) -> Path:
    data = config_data(sim, POLICY)
    if port is not None:
        data["Butler"]["qrs"]["port"] = port
    path = directory / f"butler-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def corrupted_run(corruption: Corruption, certs_dir: Path, work_dir: Path, *, page_size: int | None = None) -> Run:
    """A live ``run_evaluate`` on a fresh simulator, its QRS answers spoiled as ``corruption`` says. A QrsError is
    the run's outcome; any other exception escapes (it would be a traceback on the command line)."""
    run = Run(corruption)
    sim = Simulator(SCENARIO, certs_dir=certs_dir).start()
    try:
        before = allocations(sim)
        config = wiring.load_config(write_config(sim, work_dir))
        build = wiring.qrs_client
        spoilers: list[Spoiler] = []

        def spoiled_client(*args: Any, **kwargs: Any) -> Any:
            client = build(*args, **kwargs)
            if page_size is not None:
                client.page_size = page_size  # below the configuration's minimum: pages of a few users
            spoilers.append(install(client, corruption))
            return client

        audit_file = work_dir / f"audit-{time.monotonic_ns()}.jsonl"
        with mock.patch.object(wiring, "qrs_client", spoiled_client):
            try:
                run.report = wiring.run_evaluate(config, audit_file=str(audit_file), actor="tester")
            except QrsError as exc:
                run.error = str(exc)
        run.applied = [item for spoiler in spoilers for item in spoiler.applied]
        run.released_ids = released_since(before, allocations(sim))
        run.released = {before[i][0] for i in run.released_ids}
        run.stats = sim.stats()
    finally:
        sim.stop()
    return run


def assert_safe(run: Run) -> None:
    """The property: a one-line stop, or a subset of the clean releases; never a protected or kept user."""
    context = f"{run.corruption} -> released {sorted(run.released)}, error {run.error!r}, applied {run.applied}"
    assert run.released <= EXPECTED_RELEASES, context
    assert not run.released & (PROTECTED | KEPT), context
    if run.error is not None:
        assert "\n" not in run.error and len(run.error) <= ERROR_LIMIT, context
        assert "Traceback" not in run.error, context
    else:
        assert run.report is not None
        claimed = {d.allocation.id for d in run.report.decisions if d.action == "release"}
        outcome = {d.allocation.id for d in run.report.decisions if d.action in ("release", "failed")}
        assert {d.user_id for d in run.report.decisions if d.action == "release"} <= EXPECTED_RELEASES, context
        assert claimed <= run.released_ids <= outcome, context  # every removal reported, none claimed falsely
    if not run.applied:  # the corruption found nothing to change: the run is the clean one
        assert run.error is None and run.released == EXPECTED_RELEASES, context


def stops(run: Run, *fragments: str) -> str:
    """The run stopped with a one-line error holding ``fragments``, and released nothing."""
    assert run.applied, run.corruption
    assert run.error is not None, f"{run.corruption} did not stop the run: released {sorted(run.released)}"
    assert run.released == set() and not any(key.startswith("DELETE") for key in run.stats), run
    for fragment in fragments:
        assert fragment in run.error, run.error
    assert_safe(run)
    return run.error


# --- the property ------------------------------------------------------------------------------------------------


@st.composite
def corruptions(draw: st.DrawFn) -> Corruption:
    kind = draw(st.sampled_from(KINDS))
    own = TABLE_MUTATIONS if kind == USERS else ALLOCATION_MUTATIONS
    return Corruption(
        kind=kind,
        mutation=draw(st.sampled_from((*BODY_MUTATIONS, *own))),
        occurrence=draw(st.sampled_from((0, 1, 2, None))),  # the inventory's read, a re-read, or every answer
        key=draw(st.sampled_from(TABLE_COLUMNS if kind == USERS else ALLOCATION_KEYS)),
        row=draw(st.none() | st.integers(0, 9)),
        other=draw(st.integers(0, 9)),
        cut=draw(st.floats(0.0, 1.0, exclude_max=True)),
        status=draw(st.sampled_from(STATUSES)),
    )


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(corruption=corruptions(), page_size=st.sampled_from((None, 4)))
@example(corruption=Corruption(USERS, "flatten-list", 0, key="tags"), page_size=None)
@example(corruption=Corruption(USERS, "null-column", None, key="customProperties"), page_size=None)
@example(corruption=Corruption(USERS, "drop-column", 1, key="inactive"), page_size=None)
@example(corruption=Corruption(PROFESSIONAL, "retype", None, key="lastUsed", row=2), page_size=None)
@example(corruption=Corruption(ANALYZER, "truncate", 0, cut=0.37), page_size=None)
@example(corruption=Corruption(PROFESSIONAL, "repeat-previous", 1), page_size=None)
@example(corruption=Corruption(USERS, "repeat-previous", None), page_size=4)
@example(corruption=Corruption(USERS, "swap-row-ids", 0, row=0, other=6), page_size=None)
def test_a_corrupted_answer_stops_the_run_or_releases_a_subset(corruption: Corruption, page_size: int | None,
                                                               certs_dir: Path, work_dir: Path) -> None:
    run = corrupted_run(corruption, certs_dir, work_dir, page_size=page_size)
    outcome = "unchanged" if not run.applied else "stopped" if run.error else f"released {len(run.released)} of 3"
    event(f"outcome: {outcome}")
    event(f"corrupted: {corruption.kind}, {'every answer' if corruption.occurrence is None else 'one answer'}")
    assert_safe(run)


# --- the cases by name -------------------------------------------------------------------------------------------


def test_one_allocation_with_an_unreadable_date_is_skipped_and_the_others_released(certs_dir: Path,
                                                                                   work_dir: Path) -> None:
    run = corrupted_run(Corruption(PROFESSIONAL, "retype", None, key="lastUsed", owner="p.idle"), certs_dir, work_dir)
    assert run.error is None and run.applied
    action, reason = run.decision("p.idle")
    assert action == "skip" and "lastUsed" in reason and "unreadable date 1700000000" in reason, reason
    assert run.released == EXPECTED_RELEASES - {"p.idle"}
    assert_safe(run)


@pytest.mark.parametrize(("column", "says"), [
    ("tags", "tags is not a list of ['name'] lists: ['vip-user']"),
    ("customProperties", "customProperties is not a list of ['definition.name', 'value'] lists: ['Department'"),
])
def test_a_flattened_list_column_stops_the_run_and_releases_nothing(column: str, says: str, certs_dir: Path,
                                                                    work_dir: Path) -> None:
    run = corrupted_run(Corruption(USERS, "flatten-list", 0, key=column), certs_dir, work_dir)
    assert stops(run, "POST /qrs/user/table: unexpected answer: user ", says)


@pytest.mark.parametrize("owner", [None, "p.vip"])
def test_a_null_tags_column_stops_the_run(owner: str | None, certs_dir: Path, work_dir: Path) -> None:
    run = corrupted_run(Corruption(USERS, "null-column", 0, key="tags", owner=owner), certs_dir, work_dir)
    assert stops(run, "tags is not a list of ['name'] lists: None")


def test_a_user_table_that_ignores_skip_stops_after_two_pages(certs_dir: Path, work_dir: Path) -> None:
    # pages of 4 users: the inventory's owners take two; the second answers the first again
    run = corrupted_run(Corruption(USERS, "repeat-previous", None), certs_dir, work_dir, page_size=4)
    assert stops(run, "POST /qrs/user/table: unexpected answer: the page at skip=4 repeats the previous one "
                      "(QRS ignored skip)")
    assert run.stats["POST /qrs/user/table"] == 2


STOPS = [  # (corruption, what the one-line error says): the run stops before any DELETE
    (Corruption(USERS, "drop-column", 0, key="tags"), "are not the columns asked for"),
    (Corruption(USERS, "drop-column", 0, key="removedExternally"), "are not the columns asked for"),
    (Corruption(USERS, "null-column", 0, key="inactive"), "inactive is not true or false: None"),
    (Corruption(USERS, "null-column", 0, key="userDirectory", owner="p.admin"), "userDirectory is not a name: None"),
    (Corruption(USERS, "retype-column", 0, key="blacklisted"), "blacklisted is not true or false: 'false'"),
    (Corruption(USERS, "retype-column", 0, key="id", owner="p.vip"), "id is not a GUID: 12345"),
    (Corruption(USERS, "retype-column", 0, key="tags", owner="p.vip"), "tags is not a list of ['name'] lists"),
    (Corruption(USERS, "reorder-columns", 0, key="tags", other=8), "are not the columns asked for"),
    (Corruption(USERS, "unknown-column", 0, other=9), "are not the columns asked for"),
    (Corruption(USERS, "short-row", 0, key="tags", owner="p.vip"), "is not a list of 9 cells"),
    (Corruption(USERS, "rows-null", 0), "rows is not a list: None"),
    (Corruption(PROFESSIONAL, "not-an-object", 0, row=0), "record 0 is not a JSON object"),
    (Corruption(PROFESSIONAL, "wrong-container", 0), "not a JSON list: {'value': "),
    (Corruption(PROFESSIONAL, "json-null", 0), "not a JSON list: None"),
    (Corruption(PROFESSIONAL, "truncate", 0, cut=0.5), "not valid JSON"),
    (Corruption(USERS, "truncate", 0, cut=0.9), "not valid JSON"),
    (Corruption(ANALYZER, "empty", 0), "an empty body where JSON was expected"),
    (Corruption(PROFESSIONAL, "html-200", 0), "an HTML page (text/html) where JSON was expected: '502 Bad Gateway"),
    (Corruption(PROFESSIONAL, "status", 0, status=204), "an empty body where JSON was expected"),
    (Corruption(PROFESSIONAL, "status", 0, status=302), "HTTP 302, a redirect"),
    (Corruption(ANALYZER, "status", 0, status=500), "HTTP 500: Something went wrong"),
    (Corruption(USERS, "status", 0, status=401), "HTTP 401"),
]


@pytest.mark.parametrize(("corruption", "says"), STOPS, ids=[str(c) for c, _ in STOPS])
def test_an_unreadable_inventory_answer_stops_the_run(corruption: Corruption, says: str, certs_dir: Path,
                                                      work_dir: Path) -> None:
    stops(corrupted_run(corruption, certs_dir, work_dir), says)


SKIPS = [  # (corruption of every answer about one allocation, what its skip reason says)
    (Corruption(PROFESSIONAL, "drop-key", None, key="id", owner="p.idle"), "unreadable record: id: missing"),
    (Corruption(PROFESSIONAL, "retype", None, key="id", owner="p.idle"), "id: unreadable value 12345"),
    (Corruption(PROFESSIONAL, "retype", None, key="quarantined", owner="p.idle"), "quarantined: unreadable value"),
    (Corruption(PROFESSIONAL, "retype", None, key="createdDate", owner="p.never"), "createdDate: unreadable date"),
    (Corruption(ANALYZER, "retype", None, key="user", owner="a.idle"), "user"),
    (Corruption(PROFESSIONAL, "drop-key", None, key="user.id", owner="p.idle"), "has no GUID id"),
]


@pytest.mark.parametrize(("corruption", "says"), SKIPS, ids=[str(c) for c, _ in SKIPS])
def test_an_unreadable_allocation_is_skipped_with_its_reason(corruption: Corruption, says: str, certs_dir: Path,
                                                             work_dir: Path) -> None:
    run = corrupted_run(corruption, certs_dir, work_dir)
    assert run.error is None and run.applied
    assert corruption.owner is not None
    skipped = [d for d in run.report.decisions if d.action == "skip" and says in d.reason] if run.report else []
    assert len(skipped) == 1, [(d.user_id, d.action, d.reason) for d in run.report.decisions] if run.report else run
    assert run.released == EXPECTED_RELEASES - {corruption.owner}
    assert_safe(run)


def test_a_null_user_is_an_owner_nobody_can_name(certs_dir: Path, work_dir: Path) -> None:
    run = corrupted_run(Corruption(PROFESSIONAL, "null-key", None, key="user", owner="p.idle"), certs_dir, work_dir)
    assert run.report is not None and run.released == EXPECTED_RELEASES - {"p.idle"}
    assert ("skip", "owner unknown: the allocation names no user and no deleted user") in \
        {(d.action, d.reason) for d in run.report.decisions}


RE_READS = [  # a re-read before a release goes wrong: that chunk's releases fail, nothing else is touched
    Corruption(PROFESSIONAL, "repeat-previous", 1),  # the re-read by id answers the whole list (filter ignored)
    Corruption(USERS, "repeat-previous", 1),  # the owners' re-read answers the inventory's users
    Corruption(PROFESSIONAL, "truncate", 1, cut=0.3),
    Corruption(USERS, "html-200", 1),
    Corruption(USERS, "null-column", 1, key="tags"),
    Corruption(PROFESSIONAL, "status", 1, status=503),
]


@pytest.mark.parametrize("corruption", RE_READS, ids=[str(c) for c in RE_READS])
def test_a_spoiled_re_read_fails_its_releases_and_nothing_else(corruption: Corruption, certs_dir: Path,
                                                               work_dir: Path) -> None:
    run = corrupted_run(corruption, certs_dir, work_dir)
    assert run.report is not None, run.error
    action, reason = run.decision("p.never")  # the longest idle: the first chunk, alone
    assert action == "failed" and reason.startswith("re-read before release failed: ") and "\n" not in reason
    assert run.released == {"p.idle", "a.idle"}
    assert_safe(run)


HARMLESS = [  # answers that hold the same facts: the clean releases
    Corruption(USERS, "duplicate-row", 0, row=2, other=3),
    Corruption(USERS, "reverse-rows", None),
    Corruption(PROFESSIONAL, "reverse", None),
    Corruption(PROFESSIONAL, "unknown-key", None),
    Corruption(ANALYZER, "null-key", None, key="modifiedDate"),
]


@pytest.mark.parametrize("corruption", HARMLESS, ids=[str(c) for c in HARMLESS])
def test_an_answer_with_the_same_facts_releases_the_clean_set(corruption: Corruption, certs_dir: Path,
                                                              work_dir: Path) -> None:
    run = corrupted_run(corruption, certs_dir, work_dir)
    assert run.applied and run.error is None and run.released == EXPECTED_RELEASES
    assert_safe(run)


# --- the same lie in every answer --------------------------------------------------------------------------------
# A spoiled inventory read alone is caught by the re-read before each release; these spoil every answer of a kind.


@pytest.mark.parametrize("owner", sorted(PROTECTED))
def test_user_rows_with_swapped_ids_never_release_a_protected_user(owner: str, certs_dir: Path,
                                                                   work_dir: Path) -> None:
    """Each row's cells belong to the user named in it (userId, userDirectory), its id to another: a record whose
    name is not the allocation owner's must not stand in for the owner's protection rules."""
    for other in range(7):
        assert_safe(corrupted_run(Corruption(USERS, "swap-row-ids", None, owner=owner, other=other), certs_dir,
                                  work_dir))


@pytest.mark.parametrize("corruption", [
    Corruption(PROFESSIONAL, "drop-key", None, key="lastUsed", owner="p.active0"),
    Corruption(PROFESSIONAL, "null-key", None, key="lastUsed", owner="p.active0"),
    Corruption(ANALYZER, "drop-key", None, key="lastUsed", owner="a.recent"),
    Corruption(ANALYZER, "null-key", None, key="lastUsed", owner="a.recent"),
], ids=str)
def test_an_allocation_without_last_used_is_not_taken_for_never_used(corruption: Corruption, certs_dir: Path,
                                                                     work_dir: Path) -> None:
    """QRS sends lastUsed on every allocation (1753-01-01 when never used): a missing or null one is unknown, not
    "never used since createdDate"."""
    run = corrupted_run(corruption, certs_dir, work_dir)
    assert corruption.owner not in run.released, run.decision(str(corruption.owner))
    assert_safe(run)


@pytest.mark.parametrize("mutation", ["drop-key", "null-key"])
def test_an_allocation_without_its_quarantined_flag_is_not_released(mutation: str, certs_dir: Path,
                                                                    work_dir: Path) -> None:
    run = corrupted_run(Corruption(ANALYZER, mutation, None, key="quarantined", owner="a.quarantined"), certs_dir,
                        work_dir)
    action, reason = run.decision("a.quarantined")  # the clean answers: skip, quarantined by Qlik
    assert action != "release" and "a.quarantined" not in run.released, reason
    assert_safe(run)


# --- the command line --------------------------------------------------------------------------------------------


def evaluate_cli(corruption: Corruption, certs_dir: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str],
                                                                                   set[str], list[str]]:
    """``python -m butler evaluate --json`` through a corrupting proxy: the process, who lost an allocation, and
    which answers were spoiled."""
    sim = Simulator(SCENARIO, certs_dir=certs_dir).start()
    try:
        before = allocations(sim)
        with CorruptingProxy(sim.url, ensure_certs(certs_dir), corruption) as proxy:
            config_file = write_config(sim, tmp_path, port=proxy.port)
            env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENV}
            done = subprocess.run([sys.executable, "-m", "butler", "evaluate", "--config", str(config_file), "--json",
                                   "--audit-file", str(tmp_path / "audit.jsonl")], capture_output=True, text=True,
                                  cwd=ROOT, env=env, timeout=120)
        released = {before[i][0] for i in released_since(before, allocations(sim))}
        return done, released, proxy.spoiler.applied
    finally:
        sim.stop()


CLI_CASES = [  # (corruption, exit code, the error line's text, who is released)
    (Corruption(USERS, "flatten-list", 0, key="tags"), 1, "tags is not a list of ['name'] lists", set()),
    (Corruption(USERS, "null-column", 0, key="tags"), 1, "tags is not a list of ['name'] lists: None", set()),
    (Corruption(PROFESSIONAL, "truncate", 0, cut=0.6), 1, "not valid JSON", set()),
    (Corruption(ANALYZER, "html-200", 0), 1, "an HTML page (text/html) where JSON was expected", set()),
    (Corruption(PROFESSIONAL, "repeat-previous", 1), 1, "1 release(s) failed", {"p.idle", "a.idle"}),
    (Corruption(PROFESSIONAL, "retype", None, key="lastUsed", owner="p.idle"), 0, None, {"p.never", "a.idle"}),
]


@pytest.mark.parametrize(("corruption", "code", "says", "released"), CLI_CASES, ids=[str(c[0]) for c in CLI_CASES])
def test_the_command_line_says_one_line_and_never_a_traceback(corruption: Corruption, code: int, says: str | None,
                                                              released: set[str], certs_dir: Path,
                                                              tmp_path: Path) -> None:
    done, gone, applied = evaluate_cli(corruption, certs_dir, tmp_path)
    assert applied, corruption
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    assert done.returncode == code, done.stderr
    assert gone == released
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    if says is None:
        assert errors == [] and json.loads(done.stdout)["summary"]["released"] == len(released)
        return
    assert len(errors) == 1 and says in errors[0] and len(errors[0]) <= ERROR_LIMIT, done.stderr
    if released:  # the run completed: the report is on stdout
        assert json.loads(done.stdout)["summary"]["failed"] == 1
    else:
        assert done.stdout == ""
