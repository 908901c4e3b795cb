"""Each function may read every secret its code path reads, and send e-mail only as the configured sender.

A deployment is simulated: the template's conditions and ``Fn::If`` are evaluated for given parameter values, so a
grant under the wrong condition (or missing from one function) fails here rather than as a 500 in AWS.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from butler.config import Config
from tests.infra.conftest import as_list, statements

# Every Secrets Manager id the configuration can name, and the stack parameter that grants reading it.
SECRET_PARAMETERS = {
    "Butler.qrs.secretId": "CertificateSecretArn",
    "Butler.influxDb.tokenSecretId": "InfluxTokenSecretArn",
    "Butler.influxDb.passwordSecretId": "InfluxPasswordSecretArn",
    "Butler.licenseManagement.notifications.email.smtp.passwordSecretId": "SmtpPasswordSecretArn",
}
# The configuration sections each function's code path reads (collect never notifies anyone).
READS = {
    "CollectFunction": ("Butler.qrs", "Butler.influxDb"),
    "EvaluateFunction": ("Butler.qrs", "Butler.influxDb", "Butler.licenseManagement"),
    "ApiFunction": ("Butler.qrs", "Butler.influxDb", "Butler.licenseManagement"),
}
SENDER = "qlik-licenses@corp.example"
ARNS = {name: f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:butler/{name}-AbCdEf"
        for name in SECRET_PARAMETERS.values()}
NO_VALUE = object()


def secret_keys(model: type[BaseModel] = Config, prefix: str = "") -> set[str]:
    """Dotted paths of every ``...SecretId`` field in the configuration models."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name.endswith("ecretId"):
            found.add(path)
        for kind in _models(field.annotation):
            found |= secret_keys(kind, path)
    return found


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models(arg)]


class Deployment:
    """The template's intrinsics (Ref, Fn::If, conditions) evaluated for one set of parameter values."""

    def __init__(self, cfn: dict[str, Any], parameters: dict[str, Any]) -> None:
        defaults = {name: p.get("Default") for name, p in cfn["Parameters"].items()}
        self.cfn, self.values = cfn, {**defaults, **parameters}

    def holds(self, condition: str) -> bool:
        return bool(self.resolve(self.cfn["Conditions"][condition]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key in _FUNCTIONS:
                return _FUNCTIONS[key](self, value)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}

    def grants(self, function: str) -> list[dict[str, Any]]:
        """The function role's statements, as deployed."""
        role = self.cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
        policies = self.resolve(self.cfn["Resources"][role]["Properties"].get("Policies", []))
        return [s for policy in policies for s in statements(policy["PolicyDocument"])]

    def readable_secrets(self, function: str) -> list[Any]:
        return [resource for s in self.grants(function) if "secretsmanager:GetSecretValue" in as_list(s["Action"])
                for resource in as_list(s["Resource"])]


def _ref(deployment: Deployment, name: str) -> Any:
    if name == "AWS::NoValue":
        return NO_VALUE
    return deployment.values.get(name, {"Ref": name})


_FUNCTIONS = {
    "Ref": _ref,
    "Condition": lambda d, name: d.holds(name),
    "Fn::If": lambda d, v: d.resolve(v[1] if d.holds(v[0]) else v[2]),
    "Fn::Equals": lambda d, v: d.resolve(v[0]) == d.resolve(v[1]),
    "Fn::Not": lambda d, v: not d.resolve(v[0]),
    "Fn::And": lambda d, v: all(d.resolve(c) for c in v),
    "Fn::Or": lambda d, v: any(d.resolve(c) for c in v),
    "Fn::Join": lambda d, v: v[0].join(str(x) for x in d.resolve(v[1])),
}


def test_every_secret_the_configuration_can_name_has_a_stack_parameter(cfn: dict[str, Any]) -> None:
    assert secret_keys() == set(SECRET_PARAMETERS), "a new ...SecretId key needs a parameter and grants here"
    for parameter in SECRET_PARAMETERS.values():
        assert cfn["Parameters"][parameter]["Default"] == "", parameter
        assert cfn["Parameters"][parameter]["AllowedPattern"].startswith("^(arn:aws"), parameter
    grouped = {p for group in cfn["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               for p in group["Parameters"]}
    assert {*SECRET_PARAMETERS.values(), "NoticeSenderAddress"} <= grouped


@pytest.mark.parametrize("function", READS)
def test_each_function_reads_every_secret_its_code_path_reads(cfn: dict[str, Any], function: str) -> None:
    readable = Deployment(cfn, ARNS).readable_secrets(function)
    for key, parameter in SECRET_PARAMETERS.items():
        needed = key.startswith(READS[function])
        assert (ARNS[parameter] in readable) == needed, (function, key)


@pytest.mark.parametrize("function", READS)
def test_without_secret_parameters_only_the_stacks_certificate_secret_is_readable(
        cfn: dict[str, Any], function: str) -> None:
    assert Deployment(cfn, {}).readable_secrets(function) == [{"Ref": "CertificateSecret"}]


@pytest.mark.parametrize("function", READS)
def test_an_existing_certificate_secret_replaces_the_stacks(cfn: dict[str, Any], function: str) -> None:
    arn = ARNS["CertificateSecretArn"]
    assert Deployment(cfn, {"CertificateSecretArn": arn}).readable_secrets(function) == [arn]


@pytest.mark.parametrize("function", READS)
def test_ses_sending_only_as_the_configured_sender(cfn: dict[str, Any], function: str) -> None:
    def ses_statements(deployment: Deployment) -> list[dict[str, Any]]:
        return [s for s in deployment.grants(function) if any(a.startswith("ses:") for a in as_list(s["Action"]))]

    assert ses_statements(Deployment(cfn, {})) == []
    sending = ses_statements(Deployment(cfn, {"NoticeSenderAddress": SENDER}))
    if "Butler.licenseManagement" not in READS[function]:
        assert sending == []
        return
    [statement] = sending
    assert sorted(statement["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": SENDER}}
    for resource in statement["Resource"]:  # the sender's (or its domain's) identity in any region, never "*"
        template = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        assert template.startswith("arn:${AWS::Partition}:ses:*:${AWS::AccountId}:identity/${")


def test_the_deployment_evaluator_follows_conditions(cfn: dict[str, Any]) -> None:
    assert Deployment(cfn, {}).holds("CreateCertificateSecret")
    assert not Deployment(cfn, {"CertificateSecretArn": ARNS["CertificateSecretArn"]}).holds("CreateCertificateSecret")
    assert Deployment(cfn, {"NoticeSenderAddress": SENDER}).holds("HasNoticeSender")
    assert not Deployment(cfn, {}).holds("HasSmtpPasswordSecret")
