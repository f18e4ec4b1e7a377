"""tfserving-gateway: TF Serving's REST API, translated to ModelServer's gRPC API."""

__version__ = "0.1.0"
