"""The server license (issue 15): the Valid To date in every form (a colon never truncates it), days negative once
expired, no expiry, an unreadable value failing closed in one line, the serial masked, QRS's flags winning."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from butler.licenses.server_license import (
    NO_EXPIRY_DAYS,
    ServerLicense,
    Unreadable,
    influx_fields,
    metric_value,
    parse_server_license,
    redundant_analyzer,
    serial_last4,
    server_license_status,
    valid_to,
)

TODAY = date(2026, 6, 15)


def details(*lines: str, sep: str = "\r\n") -> str:
    return sep.join(["Serial: 9999000000000001", "Product: Qlik Sense Enterprise", "Valid From: 2025-06-01",
                     *lines, "Professional access: 100"])


def license_(key_details: str | None = None, **fields: Any) -> ServerLicense:
    return parse_server_license({"serial": "9999000000000001", "product": 0, "isExpired": False, "isInvalid": False,
                                 "isBlacklisted": False, "expiredReason": "", "keyDetails": key_details, **fields})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-05-31", date(2027, 5, 31)),
        ("2027-05-31 23:59", date(2027, 5, 31)),  # Butler's bug: split on ':' kept "2027-05-31 23"
        ("2027-05-31 00:00", date(2027, 5, 31)),
        ("2027-05-31 23:59:59", date(2027, 5, 31)),
        ("2027-05-31T23:59:59", date(2027, 5, 31)),
        ("2027-05-31T23:59:59Z", date(2027, 5, 31)),
        ("2027-05-31T23:59:59.123Z", date(2027, 5, 31)),
        ("2027-05-31t23:59:59.5z", date(2027, 5, 31)),
        ("2027-05-31T23:59:59+02:00", date(2027, 5, 31)),
        ("2027-05-31T23:00:00-05:00", date(2027, 5, 31)),  # the day as written, not shifted to UTC
        ("2027-05-31T23:59:59.123+0200", date(2027, 5, 31)),
        ("2027-05-31 23:59 Z", date(2027, 5, 31)),
        ("   2027-05-31   ", date(2027, 5, 31)),
    ],
)
def test_every_date_form_reads_the_whole_date(value: str, expected: date) -> None:
    assert valid_to(details(f"Valid To: {value}")) == expected


@pytest.mark.parametrize("line", ["Valid To: 2027-05-31", "valid to:2027-05-31", "  VALID TO :  2027-05-31  ",
                                  "ValidTo: 2027-05-31", "Valid  To:\t2027-05-31"])
@pytest.mark.parametrize("sep", ["\r\n", "\n"])
def test_the_key_is_found_whatever_its_case_spacing_and_line_ends(line: str, sep: str) -> None:
    assert valid_to(details(line, sep=sep)) == date(2027, 5, 31)


def test_no_valid_to_line_or_no_key_details_is_no_expiry() -> None:
    assert valid_to(details()) is None
    assert valid_to("") is None
    assert valid_to(None) is None
    assert valid_to(details("Valid From: 2027-05-31")) is None  # another key holding a date is not the expiry


@pytest.mark.parametrize("value", ["31/05/2027", "2027-13-01", "2027-02-30", "2027-05-31 25:00", "2027-05-31 23",
                                   "never", "", "2027-05-31T23:59:59+25:00", "2027-05-31 (UTC)", "20270531"])
def test_a_value_that_is_no_date_is_unreadable_never_guessed(value: str) -> None:
    found = valid_to(details(f"Valid To: {value}"))
    assert found == Unreadable(value)
    assert str(found) == f"unreadable: '{value}'"


def test_several_valid_to_lines_the_earliest_counts_and_any_unreadable_one_wins() -> None:
    assert valid_to(details("Valid To: 2028-01-01", "Valid To: 2027-05-31 12:00")) == date(2027, 5, 31)
    assert isinstance(valid_to(details("Valid To: 2028-01-01", "Valid To: soon")), Unreadable)


def test_a_long_unreadable_value_is_quoted_short_on_one_line() -> None:
    assert len(str(Unreadable("x" * 500))) < 100


# --- the status -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid", "days", "expired"),
    [
        (date(2126, 6, 15), 36524, False),  # far future
        (TODAY + timedelta(days=40), 40, False),
        (TODAY + timedelta(days=1), 1, False),
        (TODAY, 0, False),  # valid through its last day
        (TODAY - timedelta(days=1), -1, True),
        (date(2020, 1, 1), -2357, True),  # long ago: negative, never a positive count
    ],
)
def test_days_until_expiry_are_whole_days_negative_once_expired(valid: date, days: int, expired: bool) -> None:
    status = server_license_status(license_(details(f"Valid To: {valid:%Y-%m-%d} 23:59")), TODAY)
    assert status["validTo"] == valid.isoformat()
    assert status["daysUntilExpiry"] == days
    assert status["isExpired"] is expired
    assert status["problem"] is None
    assert influx_fields(status) == {"days_until_expiry": days, "expired": expired}
    assert metric_value(status) == float(days)


def test_the_status_has_exactly_the_contract_fields_and_json_types() -> None:
    status = server_license_status(license_(details("Valid To: 2027-05-31")), TODAY)
    assert status == {"validTo": "2027-05-31", "daysUntilExpiry": 350, "isExpired": False, "isInvalid": False,
                      "isBlacklisted": False, "product": "Platform", "serialLast4": "0001", "expiredReason": None,
                      "problem": None}
    assert json.loads(json.dumps(status)) == status


@pytest.mark.parametrize("key_details", [details(), None, ""])
def test_without_an_expiry_the_dates_are_null_and_the_metrics_say_far_away(key_details: str | None) -> None:
    status = server_license_status(license_(key_details), TODAY)
    assert status["validTo"] is None and status["daysUntilExpiry"] is None
    assert status["isExpired"] is False and status["problem"] is None
    assert influx_fields(status) == {"days_until_expiry": NO_EXPIRY_DAYS, "expired": False}
    assert metric_value(status) == float(NO_EXPIRY_DAYS)


def test_an_unreadable_date_is_one_line_problem_the_rest_filled_and_the_metrics_fail_closed() -> None:
    lic = license_(details("Valid To: 31.05.2027"), isInvalid=True, expiredReason=None)
    status = server_license_status(lic, TODAY)
    assert status["problem"] == "Valid To unreadable: '31.05.2027'; the expiry is unknown"
    assert "\n" not in status["problem"] and "\r" not in status["problem"]
    assert status["validTo"] is None and status["daysUntilExpiry"] is None
    assert status["isExpired"] is False  # not claimed: QRS did not say so and the date is unknown
    assert status["isInvalid"] is True and status["product"] == "Platform" and status["serialLast4"] == "0001"
    readable_flags = server_license_status(license_(details("Valid To: 31.05.2027")), TODAY)
    assert influx_fields(readable_flags) == {"days_until_expiry": 0, "expired": False}  # below every threshold
    assert metric_value(readable_flags) == 0.0


def test_malformed_key_details_break_only_the_expiry() -> None:
    garbage = "Valid To: \x00\x01 ::: 2027-05-31?\r\n\r\n:::\nValid From\n\u2028Valid To"
    status = server_license_status(license_(garbage), TODAY)
    assert status["problem"] is not None and status["problem"].count("\n") == 0
    assert status["problem"] == "Valid To unreadable: '::: 2027-05-31?'; the expiry is unknown"  # printable
    assert status["serialLast4"] == "0001" and status["isExpired"] is False and status["isInvalid"] is False


@pytest.mark.parametrize("flag", ["isExpired", "isInvalid", "isBlacklisted"])
def test_qrs_flags_win_over_a_date_far_ahead(flag: str) -> None:
    lic = license_(details("Valid To: 2030-01-01"), **{flag: True, "expiredReason": "Revoked by Qlik"})
    status = server_license_status(lic, TODAY)
    assert status[flag] is True
    assert status["daysUntilExpiry"] == (date(2030, 1, 1) - TODAY).days  # the date as it is
    assert status["isExpired"] is (flag == "isExpired")
    assert status["expiredReason"] == "Revoked by Qlik"
    assert influx_fields(status)["days_until_expiry"] == -1  # unusable: alarms fire
    assert metric_value(status) == -1.0


def test_an_expired_flag_keeps_a_longer_expired_count() -> None:
    status = server_license_status(license_(details("Valid To: 2026-06-01"), isExpired=True), TODAY)
    assert status["daysUntilExpiry"] == -14 and metric_value(status) == -14.0


def test_an_expired_flag_without_a_date_is_expired() -> None:
    status = server_license_status(license_(details(), isExpired=True), TODAY)
    assert status["isExpired"] is True and status["validTo"] is None
    assert influx_fields(status) == {"days_until_expiry": -1, "expired": True}


# --- the serial -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "shown"),
    [("12345678901234567890", "7890"), (" 9999000000000001 ", "0001"), ("12345", "2345"), ("1234", None),
     ("12", None), ("", None), (None, None)],
)
def test_only_the_last_four_of_the_serial_are_ever_shown(serial: str | None, shown: str | None) -> None:
    assert serial_last4(serial) == shown
    status = server_license_status(license_(details("Valid To: 2027-05-31"), serial=serial), TODAY)
    assert status["serialLast4"] == shown
    if serial and serial.strip() and len(serial.strip()) > 4:
        assert serial.strip() not in json.dumps(status)


def test_a_numeric_serial_is_masked_too() -> None:
    status = server_license_status(license_(serial=12345678901234567890), TODAY)
    assert status["serialLast4"] == "7890"


# --- parsing the answer -----------------------------------------------------------------------------------------


def test_parse_accepts_bytes_text_and_dicts_and_ignores_extra_fields() -> None:
    body = {"id": "2f0b2b1c-8c55-4c3e-9a65-5d4e3c2b1a00", "serial": "9999000000000001", "name": "Site",
            "organization": "Org", "product": 1, "isExpired": None, "expiredReason": None, "isBlacklisted": None,
            "isInvalid": None, "keyDetails": "Valid To: 2027-05-31", "numberOfCores": -1, "futureField": {"x": 1}}
    for raw in (body, json.dumps(body), json.dumps(body).encode()):
        lic = parse_server_license(raw)
        assert lic.name == "Site" and lic.organization == "Org" and lic.product == 1
        assert lic.isExpired is False and lic.isBlacklisted is False and lic.isInvalid is False
        assert lic.problems == ()
    assert parse_server_license({}).keyDetails is None


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", "not json", b"\xff\xfe", b"", "[{}]"])
def test_a_body_that_is_not_a_json_object_is_a_one_line_value_error(raw: bytes | str) -> None:
    with pytest.raises(ValueError, match=r"^GET /qrs/license: the answer is not") as caught:
        parse_server_license(raw)
    assert "\n" not in str(caught.value)


def test_wrong_types_are_dropped_named_and_fail_closed_never_raised() -> None:
    lic = parse_server_license({"serial": "9999000000000001", "isExpired": "yes", "isInvalid": 1, "product": [2],
                                "keyDetails": {"Valid To": "2027-05-31"}, "name": 7})
    assert lic.isExpired is False and lic.isInvalid is False and lic.keyDetails is None and lic.product is None
    assert len(lic.problems) == 5
    status = server_license_status(lic, TODAY)
    assert status["problem"] is not None and "isExpired is not true or false: 'yes'" in status["problem"]
    assert "\n" not in status["problem"]
    assert metric_value(status) == 0.0  # unknown: alarms fire


def test_the_product_is_named_as_the_spec_names_it() -> None:
    assert server_license_status(license_(product=2), TODAY)["product"] == "Standard"
    assert server_license_status(license_(product="enterprise"), TODAY)["product"] == "Enterprise"
    assert server_license_status(license_(product=None), TODAY)["product"] is None
    assert server_license_status(license_(product=9), TODAY)["product"] is None


# --- users holding both types -----------------------------------------------------------------------------------


def test_redundant_analyzer_counts_users_holding_both_comparing_guids_case_insensitively() -> None:
    a, b = "4B8A1D4E-7C1B-4F7E-9A0E-0C3F4B5A6D7E", "f0e1d2c3-b4a5-4697-8a8b-9c0d1e2f3a4b"
    c = "00000000-0000-0000-0000-000000000000"
    assert redundant_analyzer([a, b], [a.lower(), c]) == 1
    assert redundant_analyzer([a, b], ["{" + b.upper() + "}", a]) == 2
    assert redundant_analyzer([a, a], [a, a.lower()]) == 1  # a user counts once
    assert redundant_analyzer([], [a]) == 0
    assert redundant_analyzer([a, "", " "], ["", " "]) == 0  # no id is nobody
    assert redundant_analyzer(iter(["not-a-guid"]), iter(["NOT-A-GUID"])) == 1
