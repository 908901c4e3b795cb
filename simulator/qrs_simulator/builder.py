"""Assembles a SimState from plain facts about users; shared by the scenario loader and the synthetic site."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from . import clock, model
from .model import JSON
from .state import Licenses, SimState

IdFactory = Callable[[str], str]  # a stable key ("user:corp\\jdoe") -> GUID


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building allocates hundreds of thousands of acyclic objects; cyclic GC passes over them only cost time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class StateBuilder:
    def __init__(self, licenses: Licenses, now: datetime, new_id: IdFactory) -> None:
        self.state = SimState(licenses, now)
        self.now = now
        self.new_id = new_id
        self._since = clock.fmt(now - timedelta(days=730))  # when tags and custom properties were defined
        self._tags: dict[str, JSON] = {}
        self._properties: dict[str, JSON] = {}
        self._time_type: JSON | None = None

    def tag(self, name: str) -> JSON:
        """The shared TagCondensed for `name`, defined on first use."""
        found = self._tags.get(name.lower())
        if found is None:
            found = self._tags[name.lower()] = model.tag_condensed(self.new_id(f"tag:{name.lower()}"), name)
        return found

    def property_values(self, user_key: str, values: dict[str, list[str]], created: str) -> list[JSON]:
        """CustomPropertyValue objects for one user; definitions collect the values seen as their choices."""
        out: list[JSON] = []
        for name, items in values.items():
            definition = self._properties.get(name.lower())
            if definition is None:
                guid = self.new_id(f"cp:{name.lower()}")
                definition = self._properties[name.lower()] = model.custom_property_condensed(guid, name, [])
            for value in items:
                if value not in definition["choiceValues"]:
                    definition["choiceValues"].append(value)
                guid = self.new_id(f"cpv:{user_key}:{name.lower()}:{value}")
                out.append(model.custom_property_value(guid, created, definition, value))
        return out

    def add_user(self, user: JSON) -> JSON:
        self.state.users.put(user)
        return user

    def add_allocation(
        self, kind: str, user: JSON, created: datetime, last_used: datetime | None, quarantine_end: datetime | None
    ) -> None:
        guid = self.new_id(f"{kind}:{user['userDirectory'].lower()}\\{user['userId'].lower()}")
        condensed = model.user_condensed(user)
        self.state.add_allocation(kind, model.allocation(kind, guid, condensed, created, last_used, quarantine_end))

    def add_usage(self, user: JSON, index: int, start: datetime, minutes: int) -> None:
        """One analyzer-capacity usage record (with one session) for `user`."""
        key = f"usage:{user['userDirectory'].lower()}\\{user['userId'].lower()}:{index}"
        stop = start + timedelta(minutes=minutes)
        session = model.analyzer_time_session(self.new_id(key + ":session"), self.new_id(key + ":sid"), start, stop)
        usage = model.analyzer_time_usage(
            self.new_id(key), model.user_condensed(user), self.time_type(), start, stop, [session]
        )
        self.state.time_usages.put(usage)

    def time_type(self) -> JSON:
        if self._time_type is None:
            minutes = self.state.licenses.analyzer_time
            self._time_type = model.analyzer_time_type(self.new_id("analyzertime"), self._since, minutes)
            self.state.time_types.put(self._time_type)
        return self._time_type

    def finish(self) -> SimState:
        for condensed in sorted(self._tags.values(), key=lambda item: item["name"].lower()):
            self.state.tags.put(model.tag(condensed, self._since))
        for definition in sorted(self._properties.values(), key=lambda item: item["name"].lower()):
            definition["choiceValues"].sort(key=str.lower)
            self.state.custom_properties.put(model.custom_property_definition(definition, self._since))
        if self.state.licenses.analyzer_time["allocatedMinutes"] > 0:
            self.time_type()
        return self.state.finish()
