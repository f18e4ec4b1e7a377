"""Settings: frozen sections built and validated once from YAML, environment and CLI."""
