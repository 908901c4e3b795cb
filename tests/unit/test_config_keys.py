"""Unknown keys suggest the nearest valid one; the breaker, notifications, releaseRedundant and the InfluxDB 1.x
password secret, with one line per problem naming the key path."""

from __future__ import annotations

from typing import Any

import pytest

from butler import config as cfg

EMAIL = {"enable": True, "via": "smtp", "from": "qlik-licenses@corp.example", "smtp": {"host": "127.0.0.1", "port": 25},
         "hubUrl": "https://qlik.corp.example/hub"}


def problems(butler: dict[str, Any]) -> list[str]:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse({"Butler": butler})
    return error.value.problems


def management(**keys: Any) -> cfg.LicenseManagement:
    return cfg.parse({"Butler": {"licenseManagement": keys}}).Butler.licenseManagement


@pytest.mark.parametrize(("butler", "expected"), [
    ({"licenseManagement": {"exclusion": {}}}, "Butler.licenseManagement.exclusion: unknown key (did you mean "
                                               "'exclusions'?)"),
    ({"licenseManagement": {"DryRun": True}}, "Butler.licenseManagement.DryRun: unknown key (did you mean 'dryRun'?)"),
    ({"licenseManagement": {"exclusions": {"users": [{"userDirectory": "D", "userId": "u", "userid": "u"}]}}},
     "Butler.licenseManagement.exclusions.users[0].userid: unknown key (did you mean 'userId'?)"),
    ({"licenseManagement": {"notifications": {"email": {"from_": "a@b"}}}},
     "Butler.licenseManagement.notifications.email.from_: unknown key (did you mean 'from'?)"),
    ({"qrs": {"certificates": {"rootCA": "root.pem"}}},
     "Butler.qrs.certificates.rootCA: unknown key (did you mean 'rootCa'?)"),
    ({"licenceManagement": {}}, "Butler.licenceManagement: unknown key (did you mean 'licenseManagement'?)"),
    ({"qrs": {"colour": "blue"}}, "Butler.qrs.colour: unknown key (valid here: host, port, certificates, secretId, "
                                  "userHeader, serverName, connectTimeout, readTimeout, retries, pageSize)"),
])
def test_unknown_keys_suggest_the_nearest_valid_one(butler: dict[str, Any], expected: str) -> None:
    assert problems(butler) == [expected]


def test_an_unknown_top_level_key_suggests_butler() -> None:
    with pytest.raises(cfg.ConfigError) as error:
        cfg.parse({"Butler": {}, "Butlr": {}})
    assert error.value.problems == ["Butlr: unknown key (did you mean 'Butler'?)"]


# --- the breaker ------------------------------------------------------------------------------------------------


def test_abort_above_percent_defaults_to_90_and_keeps_the_throttles() -> None:
    defaults = management()
    assert (defaults.abortAbovePercent, defaults.maxReleasesPerRun, defaults.maxReleasePercent) == (90, 100, 25)
    assert management(abortAbovePercent=100).abortAbovePercent == 100


@pytest.mark.parametrize("value", [0, -5, 100.5, "lots"])
def test_abort_above_percent_is_above_0_and_at_most_100(value: Any) -> None:
    (problem,) = problems({"licenseManagement": {"abortAbovePercent": value}})
    assert problem.startswith("Butler.licenseManagement.abortAbovePercent: ")


# --- notifications ----------------------------------------------------------------------------------------------


def test_the_contract_example_is_accepted() -> None:
    notifications = management(maxReleasesPerRun=100, maxReleasePercent=25, abortAbovePercent=90, notifications={
        "warnDaysBefore": 7, "requireWarning": True, "email": EMAIL}).notifications
    assert notifications.warns and notifications.requireWarning
    email = notifications.email
    assert (email.enable, email.via, email.from_, email.hubUrl) == (True, "smtp", "qlik-licenses@corp.example",
                                                                     "https://qlik.corp.example/hub")
    assert (email.smtp.host, email.smtp.port, email.smtp.starttls, email.smtp.timeoutSeconds) == (
        "127.0.0.1", 25, False, 10)
    assert email.adminAddresses == [] and email.ses.region is None


def test_notification_defaults_send_nothing() -> None:
    notifications = management(notifications=None).notifications
    assert (notifications.warnDaysBefore, notifications.requireWarning, notifications.warns) == (0, False, False)
    assert (notifications.email.enable, notifications.email.via, notifications.email.from_) == (False, "smtp", None)
    assert notifications.email.smtp.host == "localhost" and notifications.email.smtp.username is None


def test_ses_with_admin_addresses() -> None:
    email = management(notifications={"warnDaysBefore": 3, "email": {
        "enable": True, "via": "ses", "from": "butler@corp.example", "ses": {"region": "eu-west-1"},
        "adminAddresses": ["qlik-admins@corp.example", "ops@corp.example"]}}).notifications.email
    assert (email.via, email.ses.region, email.adminAddresses) == (
        "ses", "eu-west-1", ["qlik-admins@corp.example", "ops@corp.example"])


@pytest.mark.parametrize(("notifications", "expected"), [
    ({"email": {"enable": True}},
     "Butler.licenseManagement.notifications.email.from: required when enable is true"),
    ({"email": {"from": "not an address"}},
     "Butler.licenseManagement.notifications.email.from: 'not an address' is not an e-mail address"),
    ({"email": {"via": "pigeon"}}, "Butler.licenseManagement.notifications.email.via: Input should be 'smtp' or 'ses'"),
    ({"email": {"hubUrl": "qlik.corp.example/hub"}},
     "Butler.licenseManagement.notifications.email.hubUrl: 'qlik.corp.example/hub' is not an http:// or https:// URL"),
    ({"email": {"adminAddresses": ["ops@corp.example", "ops"]}},
     "Butler.licenseManagement.notifications.email.adminAddresses[1]: 'ops' is not an e-mail address"),
    ({"email": {"smtp": {"passwordSecretId": "smtp-pw"}}},
     "Butler.licenseManagement.notifications.email.smtp.username: required with passwordSecretId"),
    ({"email": {"smtp": {"port": 0}}},
     "Butler.licenseManagement.notifications.email.smtp.port: Input should be greater than or equal to 1"),
    ({"email": {"smtp": {"timeoutSeconds": float("inf")}}},
     "Butler.licenseManagement.notifications.email.smtp.timeoutSeconds: Input should be a finite number"),
    ({"warnDaysBefore": -1},
     "Butler.licenseManagement.notifications.warnDaysBefore: Input should be greater than or equal to 0"),
    ({"warnDaysBefore": 30},
     "Butler.licenseManagement.notifications.warnDaysBefore: 30 must be less than "
     "release.professional.inactivityDays (30)"),
    ({"email": {"smtp": {"hots": "mail"}}},
     "Butler.licenseManagement.notifications.email.smtp.hots: unknown key (did you mean 'host'?)"),
])
def test_notification_problems_name_the_key(notifications: dict[str, Any], expected: str) -> None:
    (problem,) = problems({"licenseManagement": {"notifications": notifications}})
    assert problem.startswith(expected), problem


def test_require_warning_without_a_notice_period_names_both_keys() -> None:
    (problem,) = problems({"licenseManagement": {"notifications": {"requireWarning": True}}})
    assert problem.startswith("Butler.licenseManagement.notifications.requireWarning: ")
    assert "warnDaysBefore" in problem


def test_a_disabled_type_does_not_bound_the_notice_period() -> None:
    kept = management(release={"professional": {"enable": False, "inactivityDays": 5}},
                      notifications={"warnDaysBefore": 10})
    assert kept.notifications.warnDaysBefore == 10


# --- releaseRedundant: analyzer only ----------------------------------------------------------------------------


def test_release_redundant_is_an_analyzer_key() -> None:
    release = management(release={"analyzer": {"releaseRedundant": True}}).release
    assert release.analyzer.releaseRedundant is True
    assert release.analyzer.inactivityDays == 45
    assert release.for_type("analyzer") is release.analyzer


def test_a_partial_analyzer_section_keeps_the_analyzer_threshold() -> None:
    assert management(release={"analyzer": {"enable": True}}).release.analyzer.inactivityDays == 45
    assert management(release={"analyzer": None}).release.analyzer.inactivityDays == 45


def test_release_redundant_on_professional_is_an_unknown_key() -> None:
    assert problems({"licenseManagement": {"release": {"professional": {"releaseRedundant": True}}}}) == [
        "Butler.licenseManagement.release.professional.releaseRedundant: unknown key (only release.analyzer has it)"]


# --- the InfluxDB 1.x password from Secrets Manager -------------------------------------------------------------


def test_influx_password_secret() -> None:
    influx = cfg.parse({"Butler": {"influxDb": {"enable": True, "username": "butler",
                                                "passwordSecretId": "butler/influxdb"}}}).Butler.influxDb
    assert (influx.passwordSecretId, influx.password) == ("butler/influxdb", None)


@pytest.mark.parametrize(("influx", "expected"), [
    ({"username": "u", "password": "pw", "passwordSecretId": "butler/influxdb"},
     "Butler.influxDb.passwordSecretId: give either password or passwordSecretId, not both"),
    ({"passwordSecretId": "butler/influxdb"}, "Butler.influxDb.username: required with a password"),
    ({"version": 2, "org": "o", "bucket": "b", "token": "t", "passwordSecretId": "x"},
     "Butler.influxDb.passwordSecretId: is the InfluxDB 1.x password; version 2 uses tokenSecretId"),
])
def test_influx_password_problems(influx: dict[str, Any], expected: str) -> None:
    (problem,) = problems({"influxDb": influx})
    assert problem.startswith(expected), problem
    assert "pw" not in problem.split(":", 1)[1].replace("password", "")  # never the secret's value
