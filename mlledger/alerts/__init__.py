"""Alerts: where they go (:mod:`~mlledger.alerts.sinks`)."""
