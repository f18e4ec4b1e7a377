"""``tfs-gateway``: argv -> ``Settings`` -> ``gateway.process.run``.

Flags override the config file and ``TFS_GATEWAY__*`` variables. Exit status 2 means the command
line or the configuration is invalid; config errors name the bad key's path.
"""

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml

from gateway import __version__
from gateway.config import ConfigError, LogLevel, Settings, load_settings

EXIT_USAGE = 2  # argparse's own status, shared by config errors: both mean "fix how you started me"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfs-gateway",
        description="TF Serving's REST API in front of TensorFlow ModelServer's gRPC API.",
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help="YAML config file (default: none)")
    parser.add_argument("--host", help="server.host")
    parser.add_argument("--port", type=int, help="server.port")
    parser.add_argument(
        "--backend",
        action="append",
        metavar="HOST:PORT",
        help="backends.default.targets (repeat for several targets)",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        type=_deployment,
        metavar="ID=MODEL[@BACKEND]",
        help="serve MODEL at /model-serving/ID/ (repeatable)",
    )
    parser.add_argument("--workers", type=int, help="server.workers")
    parser.add_argument("--log-level", choices=get_args(LogLevel), help="server.log_level")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate, print the effective config as YAML (secrets redacted) and exit",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _deployment(text: str) -> tuple[str, dict[str, str]]:
    """``ID=MODEL[@BACKEND]`` -> (ID, deployment block); names are checked by the config."""
    deployment_id, _, target = text.partition("=")
    model, _, backend = target.partition("@")
    if not deployment_id or not model or (not backend and "@" in target):
        raise argparse.ArgumentTypeError(f"expected ID=MODEL or ID=MODEL@BACKEND, got {text!r}")
    block = {"model": model, "backend": backend} if backend else {"model": model}
    return deployment_id, block


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The nested config mapping that the given flags stand for (flags not given are left out)."""
    server = {key: getattr(args, key) for key in ("host", "port", "workers", "log_level")}
    overrides: dict[str, Any] = {"server": {k: v for k, v in server.items() if v is not None}}
    if args.backend:
        overrides["backends"] = {"default": {"targets": list(args.backend)}}
    if args.deployment:
        overrides["deployments"] = dict(args.deployment)
    return overrides


def render_config(settings: Settings) -> str:
    return yaml.safe_dump(settings.to_mapping(), sort_keys=False, default_flow_style=False)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: report the status, do not exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        overrides = overrides_from_args(args)
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"tfs-gateway: config error at {exc.path}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if args.check_config:
        sys.stdout.write(render_config(settings))
        return 0
    # SIGHUP re-reads the same file with the same flags; a partial so --workers can pickle it.
    return _runner()(settings, functools.partial(load_settings, args.config, overrides=overrides))


def _runner() -> Callable[[Settings, Callable[[], Settings]], int]:
    # Imported only now: config errors and --check-config must not need (or pay for) the web stack.
    run: Callable[[Settings, Callable[[], Settings]], int] = importlib.import_module("gateway.process").run
    return run
