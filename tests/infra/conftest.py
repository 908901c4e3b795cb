"""The SAM template, as written and as the SAM translator turns it into CloudFormation (offline, no AWS)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "eu-west-1"
# The parameters without defaults, as a deployment gives them.
DEPLOY_PARAMETERS = {"SubnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
                     "SecurityGroupIds": ["sg-0123456789abcdef0"]}


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsics (!Ref, !Sub, ...) as their long dict form."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)  # noqa: S506 (safe subclass)
    return data


def translate(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """CloudFormation from the SAM template, as `sam deploy` would submit it (managed policies stubbed)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    policies = {name: f"arn:aws:iam::aws:policy/service-role/{name}"
                for name in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole",
                             "AWSLambdaRole", "AWSXrayWriteOnlyAccess")}
    translator = Translator(policies, Parser(), boto_session=boto3.Session(region_name=REGION))
    result: dict[str, Any] = translator.translate(packaged(template), {**DEPLOY_PARAMETERS, **(parameters or {})},
                                                  get_managed_policy_map=lambda: policies)
    return result


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` does: local code folders become S3 objects."""
    result = copy.deepcopy(template)
    for name, resource in result["Resources"].items():
        for key in ("CodeUri", "ContentUri"):
            if isinstance(resource.get("Properties", {}).get(key), str):
                resource["Properties"][key] = f"s3://artifacts-bucket/{name}.zip"
    return result


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def cfn(sam_template: dict[str, Any]) -> dict[str, Any]:
    return translate(sam_template)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def statements(policy_document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    found = policy_document.get("Statement", [])
    yield from (found if isinstance(found, list) else [found])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
