"""One Logger and one Metrics for the whole package (Powertools: structured JSON logs, EMF metrics)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "qlik-license-butler"
NAMESPACE = "QlikLicenseButler"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
