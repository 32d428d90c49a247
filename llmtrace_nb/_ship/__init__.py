"""Ship: what leaves the notebook, on purpose — OTLP forwarding and OTLP JSON files."""
