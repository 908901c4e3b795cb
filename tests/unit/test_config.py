"""The configuration: the seed's examples as written, strictness, key-path errors, defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from butler import config as cfg
from butler.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED = FIXTURES / "seed-license-management.md"
SHARED_SEED = Path(__file__).parents[3] / "shared" / "seed" / "license-management.md"
# Where a fragment of the seed sits in the Butler tree, by its top-level key.
FRAGMENT_HOME = {
    "Butler": (),
    "licenseManagement": ("Butler",),
    "exclusions": ("Butler", "licenseManagement"),
    "quarantine": ("Butler", "licenseManagement"),
    "release": ("Butler", "licenseManagement"),
}


def seed_examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", SEED.read_text(), re.S)


def placed(fragment: dict[str, Any]) -> dict[str, Any]:
    (top,) = fragment.keys()
    data: dict[str, Any] = fragment
    for key in reversed(FRAGMENT_HOME[top]):
        data = {key: data}
    return data


def test_vendored_seed_matches_shared_copy() -> None:
    if SHARED_SEED.exists():
        assert SEED.read_text() == SHARED_SEED.read_text()
    assert len(seed_examples()) == 13


@pytest.mark.parametrize("example", seed_examples())
def test_every_seed_example_is_accepted_as_written(example: str) -> None:
    config = cfg.parse(placed(yaml.safe_load(example)))
    assert config.Butler.licenseManagement.maxReleasesPerRun == 100


def test_seed_full_example_values() -> None:
    config = cfg.parse(yaml.safe_load(seed_examples()[0]))
    management = config.Butler.licenseManagement
    assert management.enable is True
    assert management.release.professional.inactivityDays == 30
    assert management.release.analyzer.inactivityDays == 45
    assert management.quarantine.gracePeriod == 7
    assert [(u.userDirectory, u.userId) for u in management.exclusions.users] == [
        ("DOMAIN", "admin.user"), ("DOMAIN", "critical.user")]
    assert management.exclusions.customProperties[1].value == "Administrator"
    assert management.exclusions.userStatus.protectInternalUsers is True
    assert management.evaluation.frequency == "at 2:00 am every day"


def test_defaults_are_documented_values() -> None:
    butler = cfg.parse({"Butler": {}}).Butler
    assert butler.licenseManagement.enable is False
    assert butler.licenseManagement.dryRun is False
    assert butler.licenseManagement.maxReleasePercent == 25
    assert butler.licenseManagement.abortAbovePercent == 90
    assert butler.licenseManagement.notifications.warnDaysBefore == 0
    assert butler.licenseManagement.notifications.warns is False
    assert butler.licenseManagement.notifications.email.enable is False
    assert butler.licenseManagement.release.analyzer.releaseRedundant is False
    assert butler.influxDb.passwordSecretId is None
    assert butler.licenseManagement.concurrency == 4
    assert butler.licenseManagement.auditLog.retentionDays == 400
    assert butler.qrs.port == 4242
    assert butler.qrs.userHeader == "UserDirectory=INTERNAL; UserId=sa_api"
    assert butler.influxDb.enable is False
    assert butler.licenseMonitoring.enable is True
    assert butler.licenseMonitoring.metrics == ["totalLicenses", "allocatedLicenses", "availableLicenses",
                                                "userActivity"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"licenseManagement": {"exclusion": {"tags": ["VIP"]}}},
         "Butler.licenseManagement.exclusion: unknown key (did you mean 'exclusions'?)"),
        ({"licenseManagement": {"exclusions": {"tagz": ["VIP"]}}},
         "Butler.licenseManagement.exclusions.tagz: unknown key (did you mean 'tags'?)"),
        ({"licenseManagement": {"release": {"professional": {"inactivityDays": "soon"}}}},
         "Butler.licenseManagement.release.professional.inactivityDays: Input should be a valid number"),
        ({"licenseManagement": {"release": {"analyzer": {"inactivityDays": 0}}}},
         "Butler.licenseManagement.release.analyzer.inactivityDays: Input should be greater than 0"),
        ({"licenseManagement": {"exclusions": {"users": [{"userId": "jdoe"}]}}},
         "Butler.licenseManagement.exclusions.users[0].userDirectory: required key is missing"),
        ({"licenseManagement": {"evaluation": {"frequency": "whenever you like"}}},
         "Butler.licenseManagement.evaluation.frequency: unsupported schedule 'whenever you like'"),
        ({"licenseManagement": {"maxReleasePercent": 150}},
         "Butler.licenseManagement.maxReleasePercent: Input should be less than or equal to 100"),
        ({"influxDb": {"enable": True, "version": 2}}, "Butler.influxDb: version 2 needs org, bucket, token"),
        ({"qrs": {"certificates": {"clientCert": "a"}, "secretId": "x"}},
         "Butler.qrs: give either certificates (local PEM files) or secretId"),
        ({"licenseMonitoring": {"metrics": ["totalLicenses", "userActivty"]}},
         "Butler.licenseMonitoring.metrics[1]: Input should be"),
    ],
)
def test_invalid_config_names_the_key_path(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse({"Butler": data})
    assert any(problem.startswith(expected) for problem in error.value.problems), error.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse({"Butler": {"qrs": {"port": 0}, "licenseManagement": {"dryrun": True}}})
    assert len(error.value.problems) == 2


@pytest.mark.parametrize("empty", [None, []])
def test_null_or_empty_exclusion_lists_mean_empty(empty: Any) -> None:
    exclusions = {"users": empty, "tags": empty, "customProperties": empty, "userDirectories": empty}
    parsed = cfg.parse({"Butler": {"licenseManagement": {"exclusions": exclusions, "quarantine": None}}})
    management = parsed.Butler.licenseManagement
    assert management.exclusions.users == [] and management.exclusions.tags == []
    assert management.quarantine.gracePeriod == 7


def test_yaml_scalars_become_custom_property_text() -> None:
    data = {"exclusions": {"customProperties": [{"name": "Level", "value": 3}, {"name": "Keep", "value": True}]}}
    parsed = cfg.parse({"Butler": {"licenseManagement": data}})
    assert [p.value for p in parsed.Butler.licenseManagement.exclusions.customProperties] == ["3", "true"]


def test_top_level_must_be_butler() -> None:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse({"licenseManagement": {"dryRun": True}})
    assert error.value.problems == ["Butler: the file needs one top-level key 'Butler'"]


def test_relative_certificate_paths_resolve_from_the_config_folder(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "butler.yaml"
    file.parent.mkdir()
    file.write_text("Butler:\n  qrs:\n    certificates:\n      clientCert: certs/client.pem\n")
    config = cfg.load(file)
    assert config.Butler.qrs.certificates is not None
    assert config.resolve(config.Butler.qrs.certificates.clientCert) == tmp_path / "conf" / "certs" / "client.pem"


def test_overrides_replace_file_values(tmp_path: Path) -> None:
    file = tmp_path / "butler.yaml"
    file.write_text("Butler:\n  qrs:\n    host: old\n")
    config = cfg.load(file, {"Butler.qrs.host": "qlik.example.com", "Butler.qrs.port": "4243"})
    assert (config.Butler.qrs.host, config.Butler.qrs.port) == ("qlik.example.com", 4243)


def test_validate_config_command_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "ok.yaml"
    file.write_text(seed_examples()[0])
    assert main(["validate-config", str(file)]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_validate_config_command_lists_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("Butler:\n  licenseManagement:\n    release:\n      professional:\n        inactivityDays: -1\n"
                    "    exclusion: {}\n")
    assert main(["validate-config", str(file)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Butler.licenseManagement.release.professional.inactivityDays: ")
    assert lines[1] == "Butler.licenseManagement.exclusion: unknown key (did you mean 'exclusions'?)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("Butler:\n  qrs: [\n", "malformed YAML at line"), ("", "Butler: the file needs one top-level key")],
)
def test_validate_config_malformed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                         reason: str) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(text)
    assert main(["validate-config", str(file)]) == 2
    assert reason in capsys.readouterr().out


def test_validate_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().out
