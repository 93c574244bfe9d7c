"""What operators watch: Prometheus metrics and the readiness check."""
