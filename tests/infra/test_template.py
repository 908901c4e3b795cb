"""template.yaml's key properties, asserted on the CloudFormation the SAM translator produces from it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from butler.observability import NAMESPACE, SERVICE
from butler.sinks.audit import TABLE_SCHEMA
from tests.infra.conftest import as_list, resources_of, statements

SCHEDULED = ("CollectFunction", "EvaluateFunction")
FUNCTIONS = (*SCHEDULED, "ApiFunction")
# Services whose actions touch data; none of them may be granted on "*".
DATA_SERVICES = ("dynamodb", "secretsmanager", "sns", "sqs", "s3", "kms", "ssm", "logs", "lambda")


def role_policies(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The role's inline policies, with both branches of conditional ones (Fn::If) included."""
    found = []
    for policy in cfn["Resources"][role]["Properties"].get("Policies", []):
        branches = policy["Fn::If"][1:] if "Fn::If" in policy else [policy]
        found += [b for b in branches if "PolicyDocument" in b]
    return found


def granted(cfn: dict[str, Any], role: str) -> list[tuple[str, Any]]:
    """(action, resource) pairs of a role's inline policies."""
    pairs = []
    for policy in role_policies(cfn, role):
        for statement in statements(policy["PolicyDocument"]):
            assert statement["Effect"] == "Allow"
            pairs += [(action, resource) for action in as_list(statement["Action"])
                      for resource in as_list(statement["Resource"])]
    return pairs


# --- scheduled functions: one run at a time, never retried ---------------------------------------------------


@pytest.mark.parametrize("function", SCHEDULED)
def test_scheduled_function_has_single_concurrency(cfn: dict[str, Any], function: str) -> None:
    assert cfn["Resources"][function]["Properties"]["ReservedConcurrentExecutions"] == 1


@pytest.mark.parametrize("function", SCHEDULED)
def test_scheduled_function_is_never_retried_and_failures_go_to_sqs(cfn: dict[str, Any], function: str) -> None:
    configs = [c["Properties"] for c in resources_of(cfn, "AWS::Lambda::EventInvokeConfig").values()
               if c["Properties"]["FunctionName"] == {"Ref": function}]
    assert len(configs) == 1
    config = configs[0]
    assert config["MaximumRetryAttempts"] == 0
    assert 60 <= config["MaximumEventAgeInSeconds"] <= 900  # short: a stale run is dropped, not run late
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    queue = destination["Fn::GetAtt"][0]
    assert cfn["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    depth_alarms = [a for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()
                    if a["Properties"]["Namespace"] == "AWS/SQS"
                    and a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}]
    assert len(depth_alarms) == 1
    assert depth_alarms[0]["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_schedules_use_eventbridge_scheduler_without_names(cfn: dict[str, Any]) -> None:
    schedules = resources_of(cfn, "AWS::Scheduler::Schedule")
    by_target = {s["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0]: s["Properties"] for s in schedules.values()}
    assert set(by_target) == set(SCHEDULED)
    expected = {"CollectFunction": ("CollectSchedule", "CollectScheduleState"),
                "EvaluateFunction": ("EvaluateSchedule", "EvaluateScheduleState")}
    for function, props in by_target.items():
        assert "Name" not in props  # OmitName: CloudFormation names them, so two stacks never collide
        assert props["ScheduleExpression"] == {"Ref": expected[function][0]}
        assert props["State"] == {"Ref": expected[function][1]}
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
        payload = json.loads(props["Target"]["Input"])
        assert payload["source"] == "butler.scheduler"
        assert payload["task"] == function.removesuffix("Function").lower()


def test_schedule_roles_may_only_invoke_their_function(cfn: dict[str, Any]) -> None:
    for name, schedule in resources_of(cfn, "AWS::Scheduler::Schedule").items():
        role = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
        function = schedule["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0]
        pairs = granted(cfn, role)
        assert pairs, name
        assert {action for action, _ in pairs} == {"lambda:InvokeFunction"}
        assert all(json.dumps(resource).count(function) == 1 for _, resource in pairs)


# --- network ----------------------------------------------------------------------------------------------


def test_every_function_runs_in_the_vpc_on_python_312(cfn: dict[str, Any]) -> None:
    functions = resources_of(cfn, "AWS::Lambda::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, function in functions.items():
        props = function["Properties"]
        assert props["VpcConfig"] == {"SubnetIds": {"Ref": "SubnetIds"},
                                      "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}, name
        assert props["Runtime"] == "python3.12"
        assert len(props["Layers"]) == 1
        role = props["Role"]["Fn::GetAtt"][0]
        managed = cfn["Resources"][role]["Properties"]["ManagedPolicyArns"]
        assert any(arn.endswith("/AWSLambdaVPCAccessExecutionRole") for arn in managed)


def test_vpc_endpoints_are_optional_and_cover_the_services_used(cfn: dict[str, Any]) -> None:
    endpoints = resources_of(cfn, "AWS::EC2::VPCEndpoint")
    services = {e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: e for e in endpoints.values()}
    assert set(services) == {"secretsmanager", "sns", "dynamodb"}
    assert all("Condition" in e for e in endpoints.values())
    assert services["dynamodb"]["Properties"]["VpcEndpointType"] == "Gateway"
    for name in ("secretsmanager", "sns"):
        assert services[name]["Properties"]["VpcEndpointType"] == "Interface"
        assert services[name]["Properties"]["PrivateDnsEnabled"] is True


def test_functions_and_api_are_traced_without_responses(cfn: dict[str, Any]) -> None:
    """X-Ray (butler.observability): active tracing with SAM's write permissions; handler responses name users, so
    Powertools never records them."""
    for name, function in resources_of(cfn, "AWS::Lambda::Function").items():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", name
        managed = cfn["Resources"][props["Role"]["Fn::GetAtt"][0]]["Properties"]["ManagedPolicyArns"]
        assert any(arn.endswith("/AWSXrayWriteOnlyAccess") for arn in managed), name
    (stage,) = resources_of(cfn, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True


# --- API Gateway --------------------------------------------------------------------------------------------


def api_body(cfn: dict[str, Any]) -> dict[str, Any]:
    apis = resources_of(cfn, "AWS::ApiGateway::RestApi")
    assert len(apis) == 1
    body: dict[str, Any] = next(iter(apis.values()))["Properties"]["Body"]
    return body


def test_every_api_route_requires_iam_auth(cfn: dict[str, Any]) -> None:
    body = api_body(cfn)
    assert body["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    methods = [(path, method, op) for path, ops in body["paths"].items() for method, op in ops.items()]
    assert len(methods) >= 4  # every route (test_api_routes_are_the_resolvers_routes says which)
    for path, method, op in methods:
        assert op["security"] == [{"AWS_IAM": []}], (path, method)
        # InvokeRole NONE: API Gateway invokes the function itself, not with the caller's credentials
        assert "credentials" not in op["x-amazon-apigateway-integration"], (path, method)


def test_api_routes_are_the_resolvers_routes(cfn: dict[str, Any]) -> None:
    from butler.api.openapi import openapi_json

    resolver = {(path, method) for path, ops in json.loads(openapi_json())["paths"].items() for method in ops}
    template = {(path, method) for path, ops in api_body(cfn)["paths"].items() for method in ops}
    assert template == resolver


def test_api_stage_writes_access_logs_and_throttles(cfn: dict[str, Any]) -> None:
    stages = resources_of(cfn, "AWS::ApiGateway::Stage")
    assert len(stages) == 1
    props = next(iter(stages.values()))["Properties"]
    log_group = props["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert cfn["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"
    assert "RetentionInDays" in cfn["Resources"][log_group]["Properties"]
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "userArn", "method", "path", "status"} <= set(fields)
    settings = props["MethodSettings"]
    assert settings[0]["ResourcePath"] == "/*" and settings[0]["HttpMethod"] == "*"
    assert settings[0]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings[0]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}


# --- data -----------------------------------------------------------------------------------------------------


def test_audit_table_is_durable_encrypted_and_expires_records(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["AuditTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == TABLE_SCHEMA["TimeToLiveSpecification"]


def test_audit_table_keys_are_the_audit_sinks(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["AuditTable"]["Properties"]
    for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert props[key] == TABLE_SCHEMA[key], key


def test_certificate_secret_is_created_only_without_an_existing_arn(cfn: dict[str, Any]) -> None:
    secret = cfn["Resources"]["CertificateSecret"]
    assert secret["Condition"] == "CreateCertificateSecret"
    assert cfn["Conditions"]["CreateCertificateSecret"] == {"Fn::Equals": [{"Ref": "CertificateSecretArn"}, ""]}
    placeholder = json.loads(secret["Properties"]["SecretString"])
    assert set(placeholder) == {"client.pem", "client_key.pem", "root.pem"}
    assert not any(placeholder.values())  # a shell to fill, never key material in the template


# --- least privilege ---------------------------------------------------------------------------------------


def _is_wildcard(resource: Any) -> bool:
    text = resource if isinstance(resource, str) else resource.get("Fn::Sub") if isinstance(resource, dict) else None
    if not isinstance(text, str):
        return False
    # "${Table.Arn}/index/*" is scoped to one resource of this stack; "*" or "arn:...:*" is not.
    return "*" in text and not text.startswith("${")


def test_no_data_action_is_granted_on_every_resource(cfn: dict[str, Any]) -> None:
    roles = resources_of(cfn, "AWS::IAM::Role")
    checked = 0
    for role in roles:
        for action, resource in granted(cfn, role):
            if action.split(":")[0] in DATA_SERVICES:
                checked += 1
                assert not _is_wildcard(resource), (role, action, resource)
    assert checked >= 10


def test_wildcard_detector_catches_wildcards() -> None:
    assert _is_wildcard("*")
    assert _is_wildcard("arn:aws:dynamodb:eu-west-1:123456789012:table/*")
    assert _is_wildcard({"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:*"})
    assert not _is_wildcard({"Fn::GetAtt": ["AuditTable", "Arn"]})


def _function_grants(cfn: dict[str, Any], function: str) -> dict[str, set[str]]:
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: dict[str, set[str]] = {}
    for action, resource in granted(cfn, role):
        grants.setdefault(action, set()).add(json.dumps(resource, sort_keys=True))
    return grants


def test_each_function_gets_only_what_it_uses(cfn: dict[str, Any]) -> None:
    table = json.dumps({"Fn::GetAtt": ["AuditTable", "Arn"]}, sort_keys=True)
    topic = json.dumps({"Ref": "NoticeTopic"}, sort_keys=True)
    collect, evaluate, api = (_function_grants(cfn, f) for f in FUNCTIONS)
    notices = {"sns:Publish", "ses:SendEmail", "ses:SendRawEmail"}  # SES only with NoticeSenderAddress
    audit = {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:Query"}  # Query: open intents (reconcile)
    # collect: the daily snapshots (BatchWriteItem, Query) and the forecast's releases (Query on the index)
    assert set(collect) == {"secretsmanager:GetSecretValue", "sqs:SendMessage", "dynamodb:BatchWriteItem",
                            "dynamodb:Query"}
    assert collect["dynamodb:BatchWriteItem"] == {table}
    assert collect["dynamodb:Query"] == {table, json.dumps({"Fn::Sub": "${AuditTable.Arn}/index/*"}, sort_keys=True)}
    assert set(evaluate) == {"secretsmanager:GetSecretValue", "sqs:SendMessage", *notices, *audit,
                             "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}  # the run lock
    assert set(api) == {"secretsmanager:GetSecretValue", *notices, *audit}
    index = json.dumps({"Fn::Sub": "${AuditTable.Arn}/index/*"}, sort_keys=True)
    for grants in (evaluate, api):
        assert grants["sns:Publish"] == {topic}
        assert grants["dynamodb:PutItem"] == {table}
    assert evaluate["dynamodb:Query"] == {index}
    assert api["dynamodb:Query"] == {index, table}  # the forecast route reads the daily snapshots
    certificate = json.dumps({"Fn::If": ["CreateCertificateSecret", {"Ref": "CertificateSecret"},
                                         {"Ref": "CertificateSecretArn"}]}, sort_keys=True)
    for grants in (collect, evaluate, api):
        assert certificate in grants["secretsmanager:GetSecretValue"]


# --- alarms ------------------------------------------------------------------------------------------------------


def test_alarms_watch_the_metrics_the_code_emits(cfn: dict[str, Any]) -> None:
    from butler.licenses.collect import TYPE_METRICS
    from butler.licenses.evaluate import METRIC_NAMES, RETURN_RATE_METRIC
    from butler.licenses.planning import FORECAST_METRIC
    from butler.licenses.server_license import METRIC as SERVER_LICENSE_METRIC

    emitted = {*TYPE_METRICS, *METRIC_NAMES.values(), "EvaluationAborted", "CollectorSuccess", "AllocatedCost",
               SERVER_LICENSE_METRIC, FORECAST_METRIC, RETURN_RATE_METRIC}
    ours = [a["Properties"] for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()
            if a["Properties"]["Namespace"] == NAMESPACE]
    watched = {a["MetricName"] for a in ours}
    assert {"Available", "UtilizationPercent", "Excess", "AllocatedCost", "CollectorSuccess", "FailedReleases",
            "EvaluationAborted", "ServerLicenseDaysLeft"} <= watched
    assert watched <= emitted
    for alarm in ours:
        assert {"Name": "service", "Value": SERVICE} in alarm["Dimensions"]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_collector_heartbeat_alarm_breaches_on_silence(cfn: dict[str, Any]) -> None:
    heartbeat = [a["Properties"] for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()
                 if a["Properties"].get("MetricName") == "CollectorSuccess"]
    assert len(heartbeat) == 1
    assert heartbeat[0]["TreatMissingData"] == "breaching"
    assert heartbeat[0]["EvaluationPeriods"] == {"Ref": "CollectorHeartbeatHours"}


def test_alarm_thresholds_are_parameters(cfn: dict[str, Any]) -> None:
    thresholds = {a["Properties"]["MetricName"] + ":" + str(a["Properties"]["Dimensions"][-1]["Value"]):
                  a["Properties"]["Threshold"] for a in resources_of(cfn, "AWS::CloudWatch::Alarm").values()}
    assert thresholds["Available:professional"] == {"Ref": "ProfessionalAvailableMin"}
    assert thresholds["Available:analyzer"] == {"Ref": "AnalyzerAvailableMin"}
    assert thresholds["UtilizationPercent:professional"] == {"Ref": "UtilizationMaxPercent"}
    assert thresholds["AllocatedCost:total"] == {"Ref": "MonthlyCostMax"}


def test_server_license_alarms_fire_below_the_parameter_and_when_unusable(cfn: dict[str, Any]) -> None:
    alarms = {name: a["Properties"] for name, a in resources_of(cfn, "AWS::CloudWatch::Alarm").items()
              if a["Properties"].get("MetricName") == "ServerLicenseDaysLeft"}
    assert set(alarms) == {"ServerLicenseExpiringAlarm", "ServerLicenseUnusableAlarm"}
    assert cfn["Parameters"]["ServerLicenseDaysMin"]["Default"] == 30
    expiring, unusable = alarms["ServerLicenseExpiringAlarm"], alarms["ServerLicenseUnusableAlarm"]
    assert (expiring["Threshold"], expiring["ComparisonOperator"]) == ({"Ref": "ServerLicenseDaysMin"},
                                                                       "LessThanThreshold")
    assert (unusable["Threshold"], unusable["ComparisonOperator"]) == (0, "LessThanThreshold")  # <= -1
    for alarm in alarms.values():  # the metric is emitted with the service dimension only
        assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}] and alarm["Statistic"] == "Minimum"


def test_outputs_name_the_api_table_topics_and_secret(cfn: dict[str, Any]) -> None:
    assert {"ApiUrl", "AuditTableName", "NoticeTopicArn", "AlarmTopicArn", "CertificateSecretArn"} <= set(
        cfn["Outputs"])
    assert "execute-api" in cfn["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
