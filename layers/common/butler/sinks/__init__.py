"""Where results go: InfluxDB, the audit trail, notifications."""
