"""The CloudWatch dashboard in template.yaml: valid dashboard JSON once CloudFormation substitutes it, the panels a
site without Grafana needs, and only metrics the functions emit (found in the code, not listed by hand)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from tests.infra.conftest import ROOT

NAMESPACE = "QlikLicenseButler"
SOURCES = [*sorted((ROOT / "layers" / "common" / "butler").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def emitted_in(path: Path) -> set[str]:
    """Metric names a module emits: the keys of ``emit({...})`` / ``record(type, {...})``, ``add_metric(name="...")``,
    module constants ``*METRIC = "..."`` and the names ``metric_values`` sets."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if callee in ("emit", "record"):
                for literal in (n for argument in node.args for n in ast.walk(argument) if isinstance(n, ast.Dict)):
                    found |= {key for k in literal.keys if k is not None and (key := _string(k))}
            if callee == "add_metric":
                found |= {name for kw in node.keywords if kw.arg == "name" and (name := _string(kw.value))}
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.endswith("METRIC") and (name := _string(node.value)):
                found.add(name)
        if isinstance(node, ast.FunctionDef) and node.name == "metric_values":
            found |= {name for n in ast.walk(node) if isinstance(n, ast.Subscript) and (name := _string(n.slice))}
    return found


def emitted_metrics() -> set[str]:
    from butler.licenses.collect import TYPE_METRICS
    from butler.licenses.evaluate import METRIC_NAMES

    names = {*TYPE_METRICS, *METRIC_NAMES.values()}
    for path in SOURCES:
        names |= emitted_in(path)
    return names


def dashboard(cfn: dict[str, Any]) -> dict[str, Any]:
    (resource,) = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{([^}]+)\}", body)) <= {"AWS::Region", "AWS::StackName", "DaysToExhaustionMin",
                                                       "CollectFunction", "EvaluateFunction", "ApiFunction"}
    data: dict[str, Any] = json.loads(re.sub(r"\$\{[^}]+\}", "x", body.replace("${DaysToExhaustionMin}", "30")))
    return data


def metric_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [row for widget in data["widgets"] if widget["type"] == "metric"
            for row in widget["properties"]["metrics"]]


def test_the_finder_sees_the_metrics_the_code_emits() -> None:
    assert {"CollectorSuccess", "InfluxWriteFailures", "DaysToExhaustion", "AllocatedCost", "EvaluationAborted",
            "AnalyzerCapacityUsedPercent", "Available", "Released", "ReturnRate"} <= emitted_metrics()


def test_the_dashboard_names_only_emitted_metrics(cfn: dict[str, Any]) -> None:
    ours = {row[1] for row in metric_rows(dashboard(cfn)) if row[0] == NAMESPACE}
    assert ours <= emitted_metrics(), ours - emitted_metrics()
    for row in metric_rows(dashboard(cfn)):
        if row[0] == NAMESPACE:
            assert row[2:4] == ["service", "qlik-license-butler"], row  # the dimensions the EMF records carry


def test_the_dashboard_shows_what_a_site_without_grafana_needs(cfn: dict[str, Any]) -> None:
    data = dashboard(cfn)
    names = {row[1] for row in metric_rows(data)}
    assert {"UtilizationPercent", "Available", "Released", "ReturnRate", "DaysToExhaustion", "AllocatedCost",
            "CollectorSuccess", "FailedReleases", "Errors"} <= names
    for widget in data["widgets"]:
        assert {"x", "y", "width", "height", "properties"} <= set(widget)
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "x" and widget["properties"]["metrics"]


def test_days_to_exhaustion_alarms_watch_the_forecast_metric(cfn: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("MetricName") == "DaysToExhaustion"]
    assert sorted(a["Dimensions"][1]["Value"] for a in alarms) == ["analyzer", "professional"]
    for alarm in alarms:
        assert alarm["Threshold"] == {"Ref": "DaysToExhaustionMin"}
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert cfn["Parameters"]["DaysToExhaustionMin"]["Default"] == 30
