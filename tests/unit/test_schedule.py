import pytest

from butler.schedule import to_eventbridge


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 2:00 am every day", "cron(0 2 * * ? *)"),
        ("at 12:00 am every day", "cron(0 0 * * ? *)"),
        ("at 12:30 pm every day", "cron(30 12 * * ? *)"),
        ("At 11:15 PM every day", "cron(15 23 * * ? *)"),
        ("at 14:05 every day", "cron(5 14 * * ? *)"),
        ("every 1 hour", "rate(1 hour)"),
        ("every 2 hours", "rate(2 hours)"),
        ("every 15 minutes", "rate(15 minutes)"),
        ("every 1 days", "rate(1 day)"),
        ("rate(5 minutes)", "rate(5 minutes)"),
        ("cron(0 3 ? * MON-FRI *)", "cron(0 3 ? * MON-FRI *)"),
    ],
)
def test_supported_texts(text: str, expected: str) -> None:
    assert to_eventbridge(text) == expected


@pytest.mark.parametrize("text", ["at 13:00 pm every day", "at 25:00 every day", "every 0 hours", "cron(0 3 * *)",
                                  "daily", "every hour"])
def test_unsupported_texts_are_errors(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        to_eventbridge(text)
