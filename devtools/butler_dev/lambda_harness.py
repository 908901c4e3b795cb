"""Running the Lambda handlers on this machine, as the tests and the demo do: a function's module loaded the way
Lambda loads it, the LambdaContext it is given, the recorded events, and an SNS inbox to read its notices back.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository (devtools/butler_dev/ -> ./)
FUNCTIONS = ROOT / "functions"
EVENTS = ROOT / "events"
REGION, ACCOUNT = "eu-west-1", "123456789012"


@dataclass
class Context:
    """The LambdaContext attributes Powertools reads."""

    function_name: str = "butler-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:butler-function"
    aws_request_id: str = "7f6b1a52-1c2d-4e3f-8a9b-0c1d2e3f4a5b"

    @classmethod
    def for_function(cls, name: str) -> Context:
        """The context of one invocation of the function ``name``: its ARN and a fresh request id."""
        return cls(function_name=name, invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                   aws_request_id=str(uuid.uuid4()))


def load_handler(function: str) -> ModuleType:
    """``functions/<function>/app.py`` imported afresh: a cold start. Its ``handler`` is the entry point."""
    spec = importlib.util.spec_from_file_location(f"{function}_app", FUNCTIONS / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict[str, Any]:
    """A recorded event payload from ``events/`` (e.g. ``scheduler-evaluate``), a fresh copy each call."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return event


def notice_inbox(topic_name: str, queue_name: str = "inbox") -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed, to read the notices back (call inside moto); ``(topic, queue)``."""
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    queue = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return str(topic), str(queue)
