"""What operators see: metrics, the collector, EMF, diagnostics, redaction, the audit log, the log
ring, the documents HTTP answers with, the Grafana dashboard.

Must not touch: the pool's state (read-only snapshots).
"""
