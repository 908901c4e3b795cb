"""What the handler tests share: loading a function's module as Lambda does, its context, an SNS inbox."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]


@dataclass
class Context:
    """The LambdaContext attributes Powertools reads."""

    function_name: str = "butler-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:butler-function"
    aws_request_id: str = "7f6b1a52-1c2d-4e3f-8a9b-0c1d2e3f4a5b"


def load_handler(function: str) -> ModuleType:
    """``functions/<function>/app.py`` imported afresh: a cold start."""
    spec = importlib.util.spec_from_file_location(f"{function}_app", ROOT / "functions" / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notice_inbox(topic_name: str, queue_name: str = "inbox") -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed, to read the notices back (call inside moto)."""
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    queue = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue
