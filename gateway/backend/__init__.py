"""Channels to ModelServer: calls with deadlines and retries, resilience, probes. The only grpc user."""
