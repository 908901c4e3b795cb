"""The configuration reference names every key the models accept (docs must not drift from the code)."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from butler.config import ButlerSection

DOC = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)
    if isinstance(annotation, types.UnionType):
        for arg in annotation.__args__:
            yield from _models(arg)


def key_paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        nested = list(_models(field.annotation))
        if nested:
            for sub in nested:
                yield from key_paths(sub, path)
        else:
            yield path


def test_every_key_is_documented() -> None:
    documented = set(re.findall(r"`([A-Za-z.]+)`", DOC))
    words = {part for entry in documented for part in entry.split(".")}
    paths = list(key_paths(ButlerSection, "Butler"))
    assert len(paths) > 60
    missing = [p for p in paths if p.rsplit(".", 1)[1] not in words]
    assert missing == []
