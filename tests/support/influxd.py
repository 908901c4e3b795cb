"""The throw-away InfluxDB 1.x server lives in ``butler_dev.influxd`` (devtools/), shared with the demo and the
benchmarks; re-exported here for the tests that import it from ``tests.support``."""

from butler_dev.influxd import create_database, free_port, influxd_binary, query, rows, start_influxd

__all__ = ["create_database", "free_port", "influxd_binary", "query", "rows", "start_influxd"]
