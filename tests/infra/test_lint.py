"""cfn-lint on template.yaml (`make test` also runs `sam validate --lint`)."""

from __future__ import annotations

from pathlib import Path

from cfnlint.api import lint_file

from tests.infra.conftest import TEMPLATE


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_cfn_lint_would_report_a_mistake(tmp_path: Path) -> None:
    original = TEMPLATE.read_text(encoding="utf-8")
    broken = original.replace("BillingMode: PAY_PER_REQUEST", "BillingMode: PAY_PER_CALL", 1)
    assert broken != original
    path = tmp_path / "template.yaml"
    path.write_text(broken, encoding="utf-8")
    assert lint_file(path)
