"""Secrets Manager reads: the secret's string, cached per container, or ``SecretError`` in one plain line.

Powertools' ``parameters.get_secret`` caches the value for ``max_age`` seconds (a rotated secret is picked up
within that time). Whatever fails (no region, no credentials, not found, access denied, endpoint unreachable, a
binary secret) becomes one line naming the secret id and the cause, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator

# AWS error codes -> what an administrator reads
_CODES = {
    "ResourceNotFoundException": "not found",
    "AccessDeniedException": "access denied",
    "DecryptionFailure": "cannot be decrypted with its KMS key",
    "InvalidRequestException": "not readable now (scheduled for deletion, or no current version)",
    "UnrecognizedClientException": "the AWS credentials are not valid",
    "InvalidClientTokenId": "the AWS credentials are not valid",
    "ExpiredTokenException": "the AWS credentials have expired",
}


class SecretError(Exception):
    """A secret that could not be read; the message names the secret and the cause, never its value."""


def get_secret(secret_id: str, *, max_age: int = 300) -> str:
    """The secret's string (``SecretString``), cached for ``max_age`` seconds."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(secret_id, max_age=max_age)
    except Exception as exc:  # Powertools wraps the AWS error: the cause is in the chain
        raise SecretError(f"secret {secret_id}: {cause(exc)}") from None
    if not isinstance(value, str):
        raise SecretError(f"secret {secret_id}: holds a binary value, not text (SecretString)")
    return value


def cause(exc: BaseException) -> str:
    """The cause of a failed AWS call in plain words, with the AWS error name when there is one."""
    from botocore import exceptions as aws

    for error in _chain(exc):
        if isinstance(error, aws.NoRegionError):
            return "no AWS region configured (set AWS_REGION)"
        if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError | aws.CredentialRetrievalError):
            return "no AWS credentials"
        if isinstance(error, aws.EndpointConnectionError | aws.ConnectTimeoutError | aws.ReadTimeoutError):
            return "Secrets Manager is unreachable (no route: check the VPC endpoint or NAT, and the region)"
        if isinstance(error, aws.ClientError):
            code = str(error.response.get("Error", {}).get("Code") or "ClientError")
            return f"{_CODES.get(code, 'refused by Secrets Manager')} ({code})"
    return f"cannot be read ({type(exc).__name__})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
