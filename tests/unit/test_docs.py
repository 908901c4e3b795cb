"""The configuration reference names every key the models accept, by its whole key path, and no key they do not
accept (docs must not drift from the code).

How the reference names keys: a heading with a backticked `Butler...` path opens a section; in its tables the
first column's backticked keys are relative to that path. In one cell, a key with no dot after a dotted one, or
one starting with '.', shares the previous key's parent: `release.professional.enable`, `.inactivityDays` and
`certificates.clientCert` / `clientKey` name two keys each.
"""

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
    """Every leaf key path; a list of models (`exclusions.users`) is one key, documented with its item keys."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}"
        nested = [] if typing.get_origin(field.annotation) is list else list(_models(field.annotation))
        if nested:
            for sub in nested:
                yield from key_paths(sub, path)
        else:
            yield path


def _cell_keys(cell: str) -> Iterator[str]:
    parent = ""
    for key in re.findall(r"`([A-Za-z.]+)`", cell):
        sibling = key.startswith(".") or "." not in key
        full = f"{parent}.{key.lstrip('.')}" if sibling and parent else key.lstrip(".")
        parent = full.rpartition(".")[0]
        yield full


def documented_paths(doc: str) -> set[str]:
    """The whole key paths the reference's tables name (see the module's docstring)."""
    paths: set[str] = set()
    section = None
    for line in doc.splitlines():
        if line.startswith("#"):
            heading = re.search(r"`(Butler[A-Za-z.]*)`", line)
            section = heading.group(1) if heading else None
        elif section and line.startswith("| `"):
            paths.update(f"{section}.{key}" for key in _cell_keys(line.split("|")[1]))
    return paths


def test_every_key_is_documented_by_its_whole_path() -> None:
    paths = list(key_paths(ButlerSection, "Butler"))
    assert len(paths) > 75
    missing = [p for p in paths if p not in documented_paths(DOC)]
    assert missing == []


def test_the_reference_names_no_key_that_does_not_exist() -> None:
    paths = set(key_paths(ButlerSection, "Butler"))
    sections = {".".join(p.split(".")[:i]) for p in paths for i in range(1, p.count(".") + 1)}
    stale = sorted(documented_paths(DOC) - paths - sections)
    assert stale == []


def test_deleting_the_enable_rows_is_noticed() -> None:
    """Leaf names alone are found elsewhere in the page (`email.enable`, `release.*.enable`); whole paths are not."""
    kept = [line for line in DOC.splitlines() if not line.startswith("| `enable` |")]
    assert len(kept) == len(DOC.splitlines()) - 3
    missing = {p for p in key_paths(ButlerSection, "Butler") if p not in documented_paths("\n".join(kept))}
    assert missing == {"Butler.licenseManagement.enable", "Butler.licenseMonitoring.enable", "Butler.influxDb.enable"}


def test_cell_keys_share_the_previous_parent() -> None:
    assert list(_cell_keys("`release.analyzer.enable`, `.inactivityDays`")) == [
        "release.analyzer.enable", "release.analyzer.inactivityDays"]
    assert list(_cell_keys("`certificates.clientCert` / `clientKey` / `rootCa`")) == [
        "certificates.clientCert", "certificates.clientKey", "certificates.rootCa"]
    assert list(_cell_keys("`debug`, `logLevel`")) == ["debug", "logLevel"]
