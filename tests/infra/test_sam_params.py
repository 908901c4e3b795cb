"""`python -m butler sam-params`: the configuration's schedules and QRS settings as sam deploy parameters."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from butler import deploy
from butler.cli import main
from tests.infra.conftest import ROOT

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"


def write(folder: Path, butler: dict[str, Any], name: str = "butler.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump({"Butler": butler}, sort_keys=False), encoding="utf-8")
    return path


def sam_params(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str], str]:
    code = main(["sam-params", *args])
    out, err = capsys.readouterr()
    return code, deploy.parse_overrides(out) if code == 0 else {}, err


def test_the_shipped_config(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, params, _ = sam_params(capsys, "--config", "config/butler.yaml")
    assert code == 0
    assert params == {
        "ConfigFile": "butler.yaml", "QrsHost": "qlik-central.corp.example", "QrsPort": "4242",
        "QrsServerName": "qlik-central", "CertificateSecretArn": "", "CertificateSecretName": "butler/qrs-certificates",
        "CollectSchedule": "rate(1 hour)", "CollectScheduleState": "ENABLED",
        "EvaluateSchedule": "cron(0 2 * * ? *)", "EvaluateScheduleState": "ENABLED",
        "LogLevel": "INFO", "AuditRetentionDays": "400", "InfluxTokenSecretArn": "", "InfluxPasswordSecretArn": "",
        "SmtpPasswordSecretArn": "", "NoticeSenderAddress": "",
    }


@pytest.mark.parametrize(("collect", "evaluate", "expected"), [
    ("every 15 minutes", "at 2:30 pm every day", ("rate(15 minutes)", "cron(30 14 * * ? *)")),
    ("every 2 hours", "at 12:05 am every day", ("rate(2 hours)", "cron(5 0 * * ? *)")),
    ("rate(1 day)", "cron(0 3 ? * MON *)", ("rate(1 day)", "cron(0 3 ? * MON *)")),
])
def test_schedule_texts_become_eventbridge_expressions(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       collect: str, evaluate: str, expected: tuple[str, str]) -> None:
    path = write(tmp_path / "config", {"licenseMonitoring": {"enable": True, "collectInterval": collect},
                                       "licenseManagement": {"evaluation": {"frequency": evaluate}}})
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0
    assert (params["CollectSchedule"], params["EvaluateSchedule"]) == expected
    assert params["EvaluateScheduleState"] == "DISABLED"  # licenseManagement.enable defaults to false


@pytest.mark.parametrize(("butler", "key_path"), [
    ({"licenseMonitoring": {"collectInterval": "twice a day"}}, "Butler.licenseMonitoring.collectInterval"),
    ({"licenseManagement": {"evaluation": {"frequency": "at 25:00 every day"}}},
     "Butler.licenseManagement.evaluation.frequency"),
])
def test_an_unsupported_schedule_is_a_config_error_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   butler: dict[str, Any], key_path: str) -> None:
    path = write(tmp_path / "config", butler)
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 2
    assert err.startswith(f"{key_path}: ")


def test_translation_names_the_key_even_for_unchecked_text() -> None:
    with pytest.raises(deploy.ConfigError) as caught:
        deploy._schedule("Butler.licenseMonitoring.collectInterval", "every fortnight")
    assert caught.value.problems[0].startswith("Butler.licenseMonitoring.collectInterval: unsupported schedule")


def test_log_level_and_secret_arn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:butler/qrs-AbCdEf"
    token = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:influx-token-AbCdEf"
    path = write(tmp_path / "config", {
        "qrs": {"secretId": arn},
        "influxDb": {"enable": True, "version": 2, "org": "o", "bucket": "b", "tokenSecretId": token},
        "licenseManagement": {"logLevel": "warn"}})
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0
    assert params["CertificateSecretArn"] == arn and "CertificateSecretName" not in params
    assert params["InfluxTokenSecretArn"] == token and params["InfluxPasswordSecretArn"] == ""
    assert params["LogLevel"] == "WARNING"


def test_an_influx_1_password_secret_is_deployable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:butler/influxdb-AbCdEf"
    path = write(tmp_path / "config", {"influxDb": {"enable": True, "version": 1, "username": "butler",
                                                    "passwordSecretId": arn}})
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0
    assert (params["InfluxPasswordSecretArn"], params["InfluxTokenSecretArn"]) == (arn, "")


@pytest.mark.parametrize(("email", "expected"), [
    ({"enable": True, "via": "ses", "from": "qlik-licenses@corp.example"},
     {"SmtpPasswordSecretArn": "", "NoticeSenderAddress": "qlik-licenses@corp.example"}),
    ({"enable": True, "via": "smtp", "from": "qlik-licenses@corp.example",
      "smtp": {"username": "butler", "passwordSecretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtp"}},
     {"SmtpPasswordSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtp", "NoticeSenderAddress": ""}),
    ({"enable": False, "via": "ses", "from": "qlik-licenses@corp.example"},
     {"SmtpPasswordSecretArn": "", "NoticeSenderAddress": ""}),
])
def test_notice_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str], email: dict[str, Any],
                           expected: dict[str, str]) -> None:
    path = write(tmp_path / "config", {"licenseManagement": {"notifications": {"warnDaysBefore": 7, "email": email}}})
    code, params, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0, err
    assert {key: params[key] for key in expected} == expected


@pytest.mark.parametrize(("email", "key_path"), [
    ({"enable": True, "from": "butler@corp.example", "smtp": {"username": "butler", "passwordSecretId": "smtp-pw"}},
     "Butler.licenseManagement.notifications.email.smtp.passwordSecretId"),
    ({"enable": True, "via": "ses", "from": "butler@localhost"}, "Butler.licenseManagement.notifications.email.from"),
])
def test_notice_parameters_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], email: dict[str, Any],
                                        key_path: str) -> None:
    path = write(tmp_path / "config", {"licenseManagement": {"notifications": {"email": email}}})
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 2
    assert err.startswith(f"{key_path}: ")


def test_a_disabled_influx_grants_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "config", {"influxDb": {"enable": False, "username": "butler",
                                                    "passwordSecretId": "not-an-arn"}})
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0
    assert (params["InfluxPasswordSecretArn"], params["InfluxTokenSecretArn"]) == ("", "")


@pytest.mark.parametrize(("influx", "key_path"), [
    ({"enable": True, "version": 2, "org": "o", "bucket": "b", "token": "s3cr3t-token"}, "Butler.influxDb.token"),
    ({"enable": True, "username": "butler", "password": "s3cr3t-pw"}, "Butler.influxDb.password"),
    ({"enable": True, "version": 2, "org": "o", "bucket": "b", "tokenSecretId": "influx-token"},
     "Butler.influxDb.tokenSecretId"),
    ({"enable": True, "username": "butler", "passwordSecretId": "butler/influxdb"}, "Butler.influxDb.passwordSecretId"),
])
def test_a_deployed_config_never_holds_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               influx: dict[str, Any], key_path: str) -> None:
    path = write(tmp_path / "config", {"influxDb": influx})
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 2
    assert err.startswith(f"{key_path}: ")
    assert "s3cr3t" not in err  # the message names the key, never the value
    assert ("passwordSecretId" in err) if key_path.endswith("password") else True  # the advice: the 1.x secret


def test_key_files_beside_the_config_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "config", {})
    (tmp_path / "config" / "certs").mkdir()
    (tmp_path / "config" / "certs" / "client_key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 2
    assert "client_key.pem" in err and "BEGIN" not in err


def test_the_config_must_be_inside_the_packaged_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "elsewhere", {})
    (tmp_path / "config").mkdir()
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 2
    assert "must live under" in err


def test_a_config_in_a_subfolder_is_named_relative_to_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "config" / "prod", {}, name="site-a.yaml")
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"))
    assert code == 0
    assert params["ConfigFile"] == "prod/site-a.yaml"


def test_samconfig_environment_comes_first_and_the_config_wins(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text('version = 0.1\n[prod.deploy.parameters]\nparameter_overrides = [\n'
                         '  "SubnetIds=\\"subnet-1,subnet-2\\"",\n  "QrsHost=old-host",\n'
                         '  "AlarmEmail=\'ops@corp.example\' UtilizationMaxPercent=90",\n]\n', encoding="utf-8")
    path = write(tmp_path / "config", {"qrs": {"host": "new-host"}})
    code, params, _ = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"),
                                 "--samconfig", str(samconfig), "--config-env", "prod")
    assert code == 0
    assert params["SubnetIds"] == "subnet-1,subnet-2"
    assert params["AlarmEmail"] == "ops@corp.example" and params["UtilizationMaxPercent"] == "90"
    assert params["QrsHost"] == "new-host"
    code, _, err = sam_params(capsys, "--config", str(path), "--config-dir", str(tmp_path / "config"),
                              "--samconfig", str(samconfig), "--config-env", "staging")
    assert code == 2 and "no environment 'staging'" in err


def test_every_parameter_printed_is_a_valid_template_parameter(sam_template: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    for environment in ("default", "prod"):
        code, params, _ = sam_params(capsys, "--config", "config/butler.yaml", "--samconfig", "samconfig.toml",
                                     "--config-env", environment)
        assert code == 0
        declared = sam_template["Parameters"]
        assert set(params) <= set(declared)
        for key, value in params.items():
            spec = declared[key]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], key
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), key
        missing = {k for k, spec in declared.items() if "Default" not in spec} - set(params)
        assert missing == set(), f"samconfig {environment} leaves {missing} without a value"


def test_parse_reads_both_forms_sam_accepts() -> None:
    assert deploy.parse_overrides('ParameterKey=A,ParameterValue="x y" ParameterKey=B,ParameterValue=2') == {
        "A": "x y", "B": "2"}
    assert deploy.parse_overrides("A='x y' B=2") == {"A": "x y", "B": "2"}


def test_format_quotes_values_and_round_trips() -> None:
    params = {"EvaluateSchedule": "cron(0 2 * * ? *)", "Empty": "", "Quote": 'say "hi"'}
    text = deploy.format_overrides(params)
    assert text.startswith('EvaluateSchedule="cron(0 2 * * ? *)" Empty=""')
    assert deploy.parse_overrides(text) == params


@pytest.mark.skipif(not SAM_PYTHON.exists(), reason="SAM CLI not installed (make sam-venv)")
def test_sam_cli_reads_the_output_and_samconfig_as_we_do(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["sam-params", "--config", "config/butler.yaml", "--samconfig", "samconfig.toml",
                 "--config-env", "prod"]) == 0
    line = capsys.readouterr().out.strip()
    script = ("import json, sys, tomllib\n"
              "from samcli.cli.types import CfnParameterOverridesType as T\n"
              "prod = tomllib.load(open('samconfig.toml', 'rb'))['prod']['deploy']['parameters']\n"
              "print(json.dumps([T().convert((sys.argv[1],), None, None),\n"
              "                  T().convert(prod['parameter_overrides'], None, None)]))\n")
    result = subprocess.run([str(SAM_PYTHON), "-c", script, line], capture_output=True, text=True, check=True,
                            cwd=ROOT, timeout=60)
    theirs_output, theirs_samconfig = json.loads(result.stdout)
    assert theirs_output == deploy.parse_overrides(line)
    assert theirs_samconfig == deploy.samconfig_overrides(ROOT / "samconfig.toml", "prod")
