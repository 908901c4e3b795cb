"""Schedule texts of the configuration -> EventBridge Scheduler expressions.

Accepted forms (case-insensitive):
- ``at 2:00 am every day``, ``at 14:30 every day`` (UTC): ``cron(0 2 * * ? *)``
- ``every 1 hour``, ``every 15 minutes``, ``every 2 days``: ``rate(1 hour)``
- raw ``cron(...)`` (six fields) and ``rate(N unit)`` pass through unchanged.
"""

from __future__ import annotations

import re

_AT_DAILY = re.compile(r"^at\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\s+every\s+day$")
_EVERY = re.compile(r"^every\s+(\d+)\s+(minute|minutes|hour|hours|day|days)$")
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\(([^()]+)\)$")


def to_eventbridge(text: str) -> str:
    """Translate a schedule text; raise ValueError with a readable reason when unsupported."""
    spec = " ".join(text.strip().lower().split())
    if match := _AT_DAILY.match(spec):
        return _daily(int(match[1]), int(match[2] or 0), match[3])
    if match := _EVERY.match(spec) or _RATE.match(spec):
        return _rate(int(match[1]), match[2])
    if match := _CRON.match(text.strip()):
        if len(match[1].split()) != 6:
            raise ValueError("a cron() expression needs six fields: minutes hours day-of-month month day-of-week year")
        return text.strip()
    raise ValueError(
        f"unsupported schedule {text!r}: use 'at H:MM am|pm every day', 'every N minutes|hours|days', "
        "'cron(...)' or 'rate(...)'"
    )


def _daily(hour: int, minute: int, meridiem: str | None) -> str:
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} is not valid with {meridiem}")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{hour}:{minute:02d} is not a time of day")
    return f"cron({minute} {hour} * * ? *)"


def _rate(count: int, unit: str) -> str:
    if count < 1:
        raise ValueError("a rate needs a positive count")
    unit = unit.rstrip("s")
    return f"rate({count} {unit}{'' if count == 1 else 's'})"
