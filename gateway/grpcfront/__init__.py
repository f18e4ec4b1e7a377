"""gRPC fronts on ``server.grpc_port``: TF Serving's own API passed through to the backends (``tfs``),
served by one ``grpc.aio`` server in the gateway's process and event loop (``server``)."""
