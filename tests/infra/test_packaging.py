"""How code and configuration reach the functions: the layer, config/, handlers and environment variables."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

from butler import wiring
from butler.config import load
from butler.observability import NAMESPACE, SERVICE
from tests.infra.conftest import ROOT

CONFIG_DIR = ROOT / "config"
LAYER_DIR = ROOT / "layers" / "common"
LAYER_ROOT = "/opt/python"  # where Lambda mounts a Python layer's python/ folder
PACKAGE_DIR = LAYER_DIR / "butler"
DEVTOOLS_DIR = ROOT / "devtools" / "butler_dev"
BUILT_LAYER = ROOT / ".aws-sam" / "check" / "ButlerLayer" / "python"  # make build-check's sam build
# What only the demo, the tests and the benchmarks use: never in the layer, never imported by the package.
DEV_ONLY = {"moto", "qrs_simulator", "butler_dev", "tests"}


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
    collect = environment(sam_template, "CollectFunction")  # the daily snapshots; it never notifies anyone
    assert collect["AUDIT_TABLE"] == {"Ref": "AuditTable"} and "NOTIFY_TOPIC_ARN" not in collect
    assert collect["AUDIT_RETENTION_DAYS"] == {"Ref": "AuditRetentionDays"} and "LOCK_TABLE" not in collect


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


# --- The layer holds only what Lambda runs: no demo, no test code, no local services --------------------------


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` as sam build copies it (symlinks followed: layers/common/config)."""
    return [Path(d, f) for d, _, names in os.walk(folder, followlinks=True) for f in names if "__pycache__" not in d]


def _dev_or_test_code(folder: Path) -> list[str]:
    found = []
    for path in _files(folder):
        rel = path.relative_to(folder)
        if (path.name in ("demo.py", "conftest.py") or path.name.startswith("test_")
                or {"tests", "butler_dev", "qrs_simulator", "moto"} & set(rel.parts[:-1])):
            found.append(str(rel))
    return found


def test_the_layer_source_has_no_demo_or_test_code() -> None:
    """``sam build`` copies layers/common (ContentUri, BuildMethod python3.12) whole into the layer."""
    assert _dev_or_test_code(LAYER_DIR) == []
    assert (DEVTOOLS_DIR / "demo.py").is_file()  # the demo lives outside it
    requirements = (LAYER_DIR / "requirements.txt").read_text(encoding="utf-8").lower()
    assert not [name for name in ("moto", "qrs-simulator", "pytest") if name in requirements]


def test_the_built_layer_has_no_demo_or_test_code() -> None:
    """The layer ``make build-check`` built (make test runs it just before pytest)."""
    built = BUILT_LAYER / "butler"
    if not built.is_dir():
        pytest.skip("no sam build in .aws-sam/check (make build-check)")
    package = {str(p.relative_to(PACKAGE_DIR)) for p in _files(PACKAGE_DIR)}
    if {str(p.relative_to(built)) for p in _files(built)} != package:
        pytest.skip("the sam build in .aws-sam/check is older than the package (make build-check)")
    assert _dev_or_test_code(built) == []
    assert _dev_or_test_code(BUILT_LAYER / "config") == []
    # no dev-only distribution pulled in by a requirement (the dependencies' own test folders are theirs)
    assert not [p.name for p in BUILT_LAYER.iterdir() if p.name.split("-")[0].lower() in DEV_ONLY | {"pytest"}]


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, ast.AST]]:
    """Absolute names of every import in ``tree`` (top-level and inside functions), with the import node."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parts, base] if base else parts)
            found += [(f"{base}.{alias.name}", node) for alias in node.names]
        # ``from a import b``: b may be a module or a name in a; both a and a.b are reported
    return found


def _package_modules(folder: Path, package: str) -> dict[str, Path]:
    modules = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        name = ".".join((package, *parts))
        modules[name.removesuffix(".__init__")] = path
    return modules


def _guarded_demo_import(tree: ast.Module) -> set[ast.AST]:
    """The one allowed import of dev code: ``butler_dev.demo`` inside cli.cmd_demo, in a try that answers a
    missing module with one line (Lambda never has it)."""
    allowed: set[ast.AST] = set()
    for function in tree.body:
        if isinstance(function, ast.FunctionDef) and function.name == "cmd_demo":
            for node in ast.walk(function):
                catches = isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ModuleNotFoundError", "ImportError")
                    for h in node.handlers)
                if catches:
                    assert isinstance(node, ast.Try)
                    allowed |= {n for n in node.body if isinstance(n, ast.ImportFrom) and n.module == "butler_dev.demo"}
    return allowed


def test_no_package_module_imports_dev_or_test_code() -> None:
    """A static scan of layers/common/butler: moto, the simulator, the devtools and the tests are never imported
    (not even lazily), except the demo command's guarded import of butler_dev.demo."""
    offending = []
    for module, path in _package_modules(PACKAGE_DIR, "butler").items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed = _guarded_demo_import(tree) if module == "butler.cli" else set()
        for name, node in _imports(tree, module, path.name == "__init__.py"):
            if name.split(".")[0] in DEV_ONLY and node not in allowed:
                where = f"{path.relative_to(PACKAGE_DIR.parent)}:{getattr(node, 'lineno', '?')}"
                offending.append(f"{where} imports {name}")
    assert offending == []
    assert _guarded_demo_import(ast.parse((PACKAGE_DIR / "cli.py").read_text(encoding="utf-8")))


def test_the_package_has_no_import_circle() -> None:
    """No module of butler imports, directly or through others, one that imports it back (lazy imports count)."""
    modules = _package_modules(PACKAGE_DIR, "butler")
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name, _ in _imports(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    circles = sorted(module for module in graph if module in reachable(module))
    assert circles == []


def test_the_demo_does_not_import_the_cli() -> None:
    """butler.cli imports the demo (lazily); the demo calls the services, never the CLI back."""
    for module, path in _package_modules(DEVTOOLS_DIR, "butler_dev").items():
        names = [name for name, _ in _imports(ast.parse(path.read_text(encoding="utf-8")), module,
                                              path.name == "__init__.py")]
        assert not [name for name in names if name == "butler.cli" or name.startswith("butler.cli.")], module
