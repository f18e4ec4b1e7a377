"""Command line and lifecycle: parse ModelServer-style flags, load, serve, stop on a signal."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from types import FrameType

# TF's C++ start-up chatter would bury our own log; set before TF is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from devserver.config_file import ConfigError, ModelConfig, load_config_file, single_model_config
from devserver.models import ModelRegistry
from devserver.servicer import ModelServicer, PredictionServicer

log = logging.getLogger("devserver")
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
READY_PREFIX = "devserver listening on"


def parse_bool(text: str) -> bool:
    """ModelServer spells booleans --flag=true/false; accept the usual variants."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description="TensorFlow ModelServer stand-in (gRPC PredictionService and ModelService).",
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port; 0 picks a free one")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (ModelServer binds all)")
    parser.add_argument("--model_name", default="default", help="name of the single model to serve")
    parser.add_argument("--model_base_path", help="base path of the single model to serve")
    parser.add_argument("--model_config_file", help="ModelServerConfig in protobuf text format")
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between scans of the base paths; 0 scans only at start-up",
    )
    parser.add_argument(
        "--enable_serialization_as_tensor_content",
        type=parse_bool,
        nargs="?",
        const=True,
        default=False,
        help="write Predict outputs as tensor_content instead of typed fields",
    )
    parser.add_argument(
        "--grpc_max_message_bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="max gRPC message size, both directions",
    )
    parser.add_argument("--grpc_max_threads", type=int, default=16, help="request worker threads")
    parser.add_argument(
        "--rest_api_port",
        type=int,
        default=0,
        help="accepted for command-line compatibility; REST is the gateway's job, so ignored",
    )
    return parser


def model_configs(args: argparse.Namespace) -> list[ModelConfig]:
    if args.model_config_file:
        return load_config_file(Path(args.model_config_file))
    if not args.model_base_path:
        raise ConfigError("Either --model_base_path or --model_config_file must be given")
    return single_model_config(args.model_name, args.model_base_path)


def build_server(registry: ModelRegistry, args: argparse.Namespace) -> tuple[grpc.Server, int]:
    """Create and bind (not start) the gRPC server; return it with the bound port."""
    options = [
        ("grpc.max_send_message_length", args.grpc_max_message_bytes),
        ("grpc.max_receive_message_length", args.grpc_max_message_bytes),
        # gRPC enables SO_REUSEPORT by default, which would let two servers share a port
        # silently; a busy port must be an error instead.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, args.enable_serialization_as_tensor_content), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(registry), server)
    port = server.add_insecure_port(f"{_bracketed(args.host)}:{args.port}")
    if port == 0:
        raise OSError(f"cannot bind {args.host}:{args.port}")
    return server, port


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def install_stop_handlers() -> threading.Event:
    """SIGTERM and SIGINT ask for a clean stop (exit 0), as ModelServer does."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("Received signal %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def load_initial_models(args: argparse.Namespace) -> ModelRegistry | None:
    """Read the config and load the initial versions; None (after logging why) on failure.

    ModelServer reports ready only once these are loaded, and refuses to start when one
    of them fails.
    """
    try:
        registry = ModelRegistry(model_configs(args))
    except ConfigError as exc:
        log.error("%s", exc)
        return None
    errors = registry.poll_once()
    if errors:
        log.error("Failed to start server. Error: %s", errors[0].message)
        return None
    for name, versions in registry.summary().items():
        log.info("Model %s: available versions %s", name, versions or "none (waiting for some)")
    return registry


def serve(args: argparse.Namespace) -> int:
    registry = load_initial_models(args)
    if registry is None:
        return 1
    try:
        server, port = build_server(registry, args)
    except (OSError, RuntimeError) as exc:
        log.error("Failed to start server. Error: %s", exc)
        return 1
    stop = install_stop_handlers()
    server.start()
    registry.start_polling(args.file_system_poll_wait_seconds)
    print(f"{READY_PREFIX} {args.host}:{port}", flush=True)
    # Wake up now and then: a plain wait() would not let Python run signal handlers promptly.
    while not stop.wait(0.5):
        pass
    server.stop(grace=2).wait()
    registry.stop()
    log.info("devserver stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.rest_api_port:
        log.warning("--rest_api_port is ignored: the gateway serves REST")
    return serve(args)
