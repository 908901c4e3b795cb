"""A moto server on loopback (DynamoDB, Secrets Manager, SNS, SQS, ...), with boto3's environment pointing at it.

For code that talks to AWS through ``AWS_ENDPOINT_URL``, as a deployed function would talk to AWS: the demo. (The
unit and integration tests use moto's in-process ``mock_aws`` instead; see ``tests/conftest.py``.)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from butler_dev.influxd import free_port

REGION = "eu-west-1"


@contextlib.contextmanager
def moto_endpoint(region: str = REGION) -> Iterator[dict[str, str]]:
    """Start moto's server on 127.0.0.1; yields the environment that points boto3 at it (endpoint, region, fake
    credentials), for a child process or for ``moto_server``. The server is stopped on exit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
               "AWS_ACCESS_KEY_ID": "moto", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_SESSION_TOKEN": "moto"}
    finally:
        server.stop()


@contextlib.contextmanager
def moto_server(region: str = REGION) -> Iterator[str]:
    """``moto_endpoint`` with this process's environment pointing at it; yields the endpoint URL. The environment
    is restored on exit."""
    with moto_endpoint(region) as settings:
        previous = {name: os.environ.get(name) for name in settings}
        os.environ.update(settings)
        try:
            yield settings["AWS_ENDPOINT_URL"]
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
