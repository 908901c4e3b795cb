"""How code and configuration reach the functions: the layer, config/, handlers and environment variables."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from butler import wiring
from butler.config import load
from butler.observability import NAMESPACE, SERVICE
from tests.infra.conftest import ROOT

CONFIG_DIR = ROOT / "config"
LAYER_DIR = ROOT / "layers" / "common"
LAYER_ROOT = "/opt/python"  # where Lambda mounts a Python layer's python/ folder


def environment(sam_template: dict[str, Any], function: str) -> dict[str, Any]:
    variables = dict(sam_template["Globals"]["Function"]["Environment"]["Variables"])
    own = sam_template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    return variables | own


def test_layer_is_built_by_sam_from_layers_common(sam_template: dict[str, Any]) -> None:
    layer = sam_template["Resources"]["ButlerLayer"]
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/common"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"  # pip-installs requirements.txt, copies the rest
    assert (LAYER_DIR / "requirements.txt").is_file()
    assert (LAYER_DIR / "butler" / "__init__.py").is_file()
    assert sam_template["Globals"]["Function"]["Layers"] == [{"Ref": "ButlerLayer"}]


def test_config_folder_is_inside_the_layer(sam_template: dict[str, Any]) -> None:
    # layers/common/config is a symlink to config/: sam build copies it to /opt/python/config.
    assert (LAYER_DIR / "config").resolve() == CONFIG_DIR.resolve()
    variables = sam_template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["BUTLER_CONFIG"] == {"Fn::Sub": f"{LAYER_ROOT}/config/${{ConfigFile}}"}
    default = sam_template["Parameters"]["ConfigFile"]["Default"]
    assert (CONFIG_DIR / default).is_file()


def test_deployable_config_starts_in_dry_run_without_secrets() -> None:
    config = load(CONFIG_DIR / "butler.yaml")
    qrs = config.Butler.qrs
    assert qrs.secretId and qrs.certificates is None
    assert config.Butler.licenseManagement.dryRun is True
    assert config.Butler.influxDb.token is None and config.Butler.influxDb.password is None
    assert not [p for p in CONFIG_DIR.rglob("*") if p.suffix in (".pem", ".key", ".p12", ".pfx")]


@pytest.mark.parametrize("example", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_every_example_config_is_valid(example: str) -> None:
    load(CONFIG_DIR / example)


def test_the_functions_environment_reaches_the_config(sam_template: dict[str, Any]) -> None:
    """The deployed config as the Lambda reads it: the stack's QRS parameters win, empty ones leave the file's."""
    names = set(environment(sam_template, "CollectFunction"))
    assert {"BUTLER_CONFIG", "QRS_HOST", "QRS_PORT", "QRS_SECRET_ID", "QRS_SERVER_NAME"} <= names
    env = {"BUTLER_CONFIG": str(CONFIG_DIR / "butler.yaml"), "QRS_HOST": "qlik-node-2.corp.example",
           "QRS_PORT": "4243", "QRS_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:qrs-AbCdEf",
           "QRS_SERVER_NAME": ""}
    config = wiring.load_config(env=env)
    assert (config.Butler.qrs.host, config.Butler.qrs.port) == ("qlik-node-2.corp.example", 4243)
    assert config.Butler.qrs.secretId == env["QRS_SECRET_ID"]
    assert config.Butler.qrs.serverName == load(CONFIG_DIR / "butler.yaml").Butler.qrs.serverName


def test_functions_get_the_tables_and_topic_they_use(sam_template: dict[str, Any]) -> None:
    evaluate = environment(sam_template, "EvaluateFunction")
    assert evaluate["AUDIT_TABLE"] == evaluate["LOCK_TABLE"] == {"Ref": "AuditTable"}
    assert evaluate["NOTIFY_TOPIC_ARN"] == {"Ref": "NoticeTopic"}
    assert evaluate["AUDIT_RETENTION_DAYS"] == {"Ref": "AuditRetentionDays"}
    api = environment(sam_template, "ApiFunction")
    assert api["AUDIT_TABLE"] == {"Ref": "AuditTable"} and api["NOTIFY_TOPIC_ARN"] == {"Ref": "NoticeTopic"}
    collect = environment(sam_template, "CollectFunction")
    assert "AUDIT_TABLE" not in collect and "NOTIFY_TOPIC_ARN" not in collect


def test_powertools_settings_match_the_package(sam_template: dict[str, Any]) -> None:
    variables = sam_template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert variables["POWERTOOLS_SERVICE_NAME"] == SERVICE
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


@pytest.mark.parametrize("function", ["CollectFunction", "EvaluateFunction", "ApiFunction"])
def test_each_handler_exists(sam_template: dict[str, Any], function: str) -> None:
    props = sam_template["Resources"][function]["Properties"]
    module, attribute = props["Handler"].rsplit(".", 1)
    source = ROOT / props["CodeUri"] / f"{module}.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    defined |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    assert attribute in defined, f"{source.relative_to(ROOT)} defines no {attribute}"


@pytest.mark.parametrize("task", ["collect", "evaluate"])
def test_sample_scheduler_events_have_the_templates_shape(cfn: dict[str, Any], task: str) -> None:
    """events/ (used by the demo and the handler tests) carries what the schedules really send."""
    import json

    target = f"{task.capitalize()}Function"
    schedule = next(s["Properties"] for s in cfn["Resources"].values() if s["Type"] == "AWS::Scheduler::Schedule"
                    and s["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0] == target)
    sent = json.loads(schedule["Target"]["Input"])
    sample = json.loads((ROOT / "events" / f"scheduler-{task}.json").read_text(encoding="utf-8"))
    assert set(sample) == set(sent)
    assert {k: v for k, v in sent.items() if not str(v).startswith("<aws.scheduler.")} == {
        k: sample[k] for k, v in sent.items() if not str(v).startswith("<aws.scheduler.")}


def test_sample_api_event_is_a_template_route(cfn: dict[str, Any]) -> None:
    import json

    sample = json.loads((ROOT / "events" / "api-rest-proxy-iam.json").read_text(encoding="utf-8"))
    body = next(r["Properties"]["Body"] for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi")
    assert sample["httpMethod"].lower() in body["paths"][sample["resource"]]
    assert sample["requestContext"]["identity"]["userArn"]  # IAM auth: API Gateway names the caller
