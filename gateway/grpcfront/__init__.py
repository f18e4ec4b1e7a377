"""gRPC fronts on ``server.grpc_port``, served by one ``grpc.aio`` server in the gateway's process and
event loop (``server``): the Open Inference Protocol (``oip``), TF Serving's own API passed through to
the backends (``tfs``), health (``health``), all under one per-call policy (``calls``)."""
