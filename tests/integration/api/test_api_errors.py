"""QRS trouble through the real client: each becomes a clear 5xx naming the problem, never a secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from butler.api import Backend, create_app
from butler.config import load


def _get_status(config_path: Path) -> tuple[int, dict[str, Any]]:
    config = load(config_path)
    app = create_app(Backend(lambda: config, actor="test"))
    event = {"resource": "/v4/licenses/status", "path": "/v4/licenses/status", "httpMethod": "GET", "headers": {},
             "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
             "pathParameters": None, "requestContext": {"requestId": "r", "identity": {}}, "body": None,
             "isBase64Encoded": False}
    answer = app.resolve(event, None)  # type: ignore[arg-type]
    return answer["statusCode"], json.loads(answer["body"])


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data["Butler"]["qrs"])
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_untrusted_server_certificate_is_a_502_naming_a_certificate_problem(
        api_config: Callable[..., Path], sim_factory: Callable[..., Any]) -> None:
    stranger = sim_factory(users=1)  # another CA: the QRS server certificate no longer verifies
    config = _edit(api_config(), lambda qrs: qrs["certificates"].update(rootCa=str(stranger.certs_dir / "root.pem")))
    status, body = _get_status(config)
    pems = [(stranger.certs_dir / name).read_text() for name in ("root.pem", "client_key.pem")]
    assert status == 502 and "certificate problem" in body["message"]
    assert all(pem.splitlines()[1] not in json.dumps(body) for pem in pems) and "BEGIN" not in body["message"]


def test_a_missing_certificate_file_is_a_502_naming_the_key(api_config: Callable[..., Path]) -> None:
    config = _edit(api_config(), lambda qrs: qrs["certificates"].update(clientKey="/nonexistent/client_key.pem"))
    status, body = _get_status(config)
    assert status == 502 and "Butler.qrs.certificates.clientKey" in body["message"]


def test_a_qrs_answering_503_is_a_503(api_config: Callable[..., Path], api_sim: Any) -> None:
    config = _edit(api_config(), lambda qrs: qrs.update(retries=1))
    api_sim.fault_rate = 1.0
    status, body = _get_status(config)
    assert status == 503 and "QRS" in body["message"]


def test_a_slow_qrs_is_a_504(api_config: Callable[..., Path], api_sim: Any) -> None:
    config = _edit(api_config(), lambda qrs: qrs.update(retries=0, readTimeout=0.2))
    api_sim.latency_ms = 1000
    status, body = _get_status(config)
    assert status == 504 and "did not answer in time" in body["message"]
