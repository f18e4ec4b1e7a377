"""TLS material: the HTTPS server's ``ssl.SSLContext``, and the PEM bytes for backend channels.

``backend.py`` turns :class:`BackendPems` into gRPC channel credentials (it is the only module
that speaks grpc); this module only reads files, so a missing or unreadable file fails at
startup with the config key that named it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gateway.config.schema import BackendTLS, ConfigError, ServerTLS


@dataclass(frozen=True, slots=True)
class BackendPems:
    """What ``grpc.ssl_channel_credentials`` takes; ``None`` means gRPC's default (system roots, no client cert)."""

    root_certificates: bytes | None
    private_key: bytes | None
    certificate_chain: bytes | None
    server_name: str | None


def server_ssl_context(settings: ServerTLS, path: str = "server.tls") -> ssl.SSLContext | None:
    """An HTTPS context from ``server.tls``, or None to serve plain HTTP."""
    if settings.cert_file is None or settings.key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}.cert_file", f"cannot load the certificate and key: {exc}") from None
    return context


def backend_pems(settings: BackendTLS, path: str) -> BackendPems | None:
    """PEM bytes for a backend's TLS or mTLS, or None for plaintext."""
    if not settings.enabled:
        return None
    return BackendPems(
        root_certificates=_read(settings.ca_file, f"{path}.ca_file"),
        private_key=_read(settings.key_file, f"{path}.key_file"),
        certificate_chain=_read(settings.cert_file, f"{path}.cert_file"),
        server_name=settings.server_name,
    )


def _read(file: str | None, path: str) -> bytes | None:
    if file is None:
        return None
    try:
        return Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(path, f"cannot read {file}: {exc}") from None
