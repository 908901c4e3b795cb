"""Reading the file: duplicate keys at any level and non-finite numbers are errors naming the key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from butler import config as cfg
from butler.cli import main
from tests.unit.test_config import FRAGMENT_HOME, seed_examples


def load_text(tmp_path: Path, text: str) -> cfg.Config:
    file = tmp_path / "butler.yaml"
    file.write_text(textwrap.dedent(text))
    return cfg.load(file)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(cfg.ConfigError) as error:
        load_text(tmp_path, text)
    return error.value.problems


def test_every_seed_example_as_written_reads_without_duplicates(tmp_path: Path) -> None:
    for example in seed_examples():
        top = example.split(":", 1)[0].strip()
        text = example
        for key in reversed(FRAGMENT_HOME[top]):
            text = f"{key}:\n" + textwrap.indent(text, "  ")
        load_text(tmp_path, text)


def test_a_second_exclusions_block_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        Butler:
          licenseManagement:
            exclusions:
              tags: [VIP-User]
            release:
              professional: {inactivityDays: 30}
            exclusions:
              userDirectories: [CORP]
        """) == ["Butler.licenseManagement.exclusions: duplicate key (lines 3 and 7)"]


def test_a_second_dry_run_never_makes_a_config_live(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        Butler:
          licenseManagement:
            dryRun: true
            enable: true
            dryRun: false
        """) == ["Butler.licenseManagement.dryRun: duplicate key (lines 3 and 5)"]


def test_every_duplicate_at_every_level_is_reported_in_file_order(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        Butler:
          qrs: {host: a, port: 4242, host: b}
          licenseManagement:
            exclusions:
              users:
                - {userDirectory: CORP, userId: jdoe, userId: jane}
              tags: [a]
              tags: [b]
              tags: [c]
        Butler: {}
        """)
    assert found == [
        "Butler: duplicate key (lines 1 and 10)",
        "Butler.qrs.host: duplicate key (lines 2 and 2)",
        "Butler.licenseManagement.exclusions.users[0].userId: duplicate key (lines 6 and 6)",
        "Butler.licenseManagement.exclusions.tags: duplicate key (lines 7, 8 and 9)",
    ]


def test_duplicates_and_schema_problems_are_reported_together(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
        Butler:
          licenseManagement:
            maxReleasePercent: 10
            maxReleasePercent: 20
            exclusion: {}
        """)
    assert found == ["Butler.licenseManagement.maxReleasePercent: duplicate key (lines 3 and 4)",
                     "Butler.licenseManagement.exclusion: unknown key (did you mean 'exclusions'?)"]


def test_merge_keys_still_work_and_may_be_overridden(tmp_path: Path) -> None:
    config = load_text(tmp_path, """\
        Butler:
          licenseManagement:
            release:
              professional: &common
                enable: true
                inactivityDays: 60
              analyzer:
                <<: *common
                inactivityDays: 90
        """)
    analyzer = config.Butler.licenseManagement.release.analyzer
    assert (analyzer.enable, analyzer.inactivityDays) == (True, 90)


def test_same_text_of_different_types_is_not_a_duplicate(tmp_path: Path) -> None:
    config = load_text(tmp_path, """\
        Butler:
          licenseMonitoring:
            tags: {"1": a, site: b}
        """)
    assert config.Butler.licenseMonitoring.tags == {"1": "a", "site": "b"}


def test_an_alias_cycle_does_not_hang(tmp_path: Path) -> None:
    assert problems(tmp_path, "Butler: &loop\n  qrs: *loop\n")  # invalid, but reported, not looping


@pytest.mark.parametrize(("text", "expected"), [
    ("Butler:\n  qrs:\n    readTimeout: .inf\n", "Butler.qrs.readTimeout: Input should be a finite number"),
    ("Butler:\n  qrs:\n    connectTimeout: .nan\n", "Butler.qrs.connectTimeout: Input should be a finite number"),
    ("Butler:\n  licenseManagement:\n    release:\n      analyzer:\n        inactivityDays: .inf\n",
     "Butler.licenseManagement.release.analyzer.inactivityDays: Input should be a finite number"),
    ("Butler:\n  licenseManagement:\n    quarantine:\n      gracePeriod: -.inf\n",
     "Butler.licenseManagement.quarantine.gracePeriod: Input should be a finite number"),
    ("Butler:\n  licenseManagement:\n    abortAbovePercent: .nan\n",
     "Butler.licenseManagement.abortAbovePercent: Input should be a finite number"),
    ("Butler:\n  licenseMonitoring:\n    costs: {professional: .inf}\n",
     "Butler.licenseMonitoring.costs.professional: Input should be a finite number"),
    ("Butler:\n  influxDb:\n    timeoutSeconds: .inf\n",
     "Butler.influxDb.timeoutSeconds: Input should be a finite number"),
    ("Butler:\n  licenseManagement:\n    maxReleasesPerRun: .inf\n",
     "Butler.licenseManagement.maxReleasesPerRun: Input should be a finite number"),
])
def test_non_finite_numbers_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_validate_config_prints_duplicates_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "dup.yaml"
    file.write_text("Butler:\n  licenseManagement:\n    dryRun: true\n    dryRun: false\n")
    assert main(["validate-config", str(file)]) == 2
    assert capsys.readouterr().out == "Butler.licenseManagement.dryRun: duplicate key (lines 3 and 4)\n"


def test_overrides_do_not_hide_duplicates(tmp_path: Path) -> None:
    file = tmp_path / "dup.yaml"
    file.write_text("Butler:\n  qrs:\n    host: a\n    host: b\n")
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(file, {"Butler.qrs.host": "c"})
    assert error.value.problems == ["Butler.qrs.host: duplicate key (lines 3 and 4)"]
