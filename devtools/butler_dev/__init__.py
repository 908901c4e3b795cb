"""Local development tools, kept out of the Lambda layer: ``python -m butler demo`` and the local services that the
demo, the tests and the benchmarks share (a throw-away InfluxDB, a moto server, the Lambda harness).

Installed with the project (``pip install -e .``, done by ``make demo`` / ``make test``); never part of
``layers/common``, so ``sam build`` never packages it.
"""
