"""Who may call what: Basic auth and API keys, per deployment or model, or globally.

The dispatcher calls ``Authenticator.admit`` with the target it resolved from the URL
grammar, and the policy comes from that target's deployment or model settings, so an
encoded or oddly cased path cannot reach a route under another route's policy. Paths
that resolve to nothing get the global policy: an unauthenticated client learns nothing
about which deployments exist.

Credentials::

    Authorization: Basic base64(user:password)       (type basic or any)
    Authorization: Bearer <key>  |  X-API-Key: <key> (type api_key or any)

Schemes are case-insensitive (RFC 7235); credentials are not. Missing or wrong
credentials get 401 with ``WWW-Authenticate``; credentials that another route accepts
get 403. Every comparison is constant-time and runs over every configured secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.config import AuthPolicy, Secret, Settings
from gateway.errors import Forbidden, Unauthorized
from gateway.routing import routes

API_KEY_HEADER = "X-API-Key"
_HEALTH: frozenset[str] = frozenset({"healthz", "readyz"})
# Compared against when a user name is unknown, so timing does not reveal which names exist.
_DUMMY = Secret("none", "unknown user", "\x00" * 32)  # compared against when the user is unknown


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented; empty fields when it presented nothing of that kind."""

    user: str | None = None
    password: str | None = None
    api_key: str | None = None
    malformed: bool = False

    @property
    def present(self) -> bool:
        return self.user is not None or self.api_key is not None or self.malformed


def credentials(headers: Mapping[str, str]) -> Credentials:
    """Parse ``Authorization`` / ``X-API-Key`` without judging them."""
    header = headers.get("Authorization")
    if header is None:
        key = headers.get(API_KEY_HEADER)
        return Credentials(api_key=key) if key else Credentials()
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return Credentials(api_key=value)
    if scheme.lower() == "basic" and value:
        return _basic(value)
    return Credentials(malformed=True)


def _basic(value: str) -> Credentials:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return Credentials(malformed=True)
    user, colon, password = decoded.partition(":")
    if not colon:
        return Credentials(malformed=True)
    return Credentials(user=user, password=password)


def accepts(policy: AuthPolicy, creds: Credentials) -> bool:
    """Whether ``policy`` lets these credentials in."""
    if policy.type == "none":
        return True
    ok = False
    if policy.type in ("basic", "any") and creds.user is not None and creds.password is not None:
        secret = policy.basic_users.get(creds.user)
        # Always compare, even for an unknown user, so the answer takes the same time.
        matched = (secret or _DUMMY).matches(creds.password)
        ok = matched and secret is not None
    if policy.type in ("api_key", "any") and creds.api_key is not None:
        ok = _any_key(policy, creds.api_key) or ok
    return ok


def _any_key(policy: AuthPolicy, candidate: str) -> bool:
    # No short-circuit: the time taken must not say which key (if any) matched.
    matched = False
    for key in policy.api_keys:
        matched = key.matches(candidate) | matched
    return matched


def challenge(policy: AuthPolicy) -> str:
    realm = policy.realm.replace("\\", "\\\\").replace('"', '\\"')
    schemes = {"basic": ["Basic"], "api_key": ["Bearer"], "any": ["Basic", "Bearer"]}[policy.type]
    return ", ".join(f'{scheme} realm="{realm}"' for scheme in schemes)


class Authenticator:
    """Every policy the config names, built once; decides one request's fate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.default = settings.auth.policy()
        self.policies = tuple(_all_policies(settings))

    @property
    def active(self) -> bool:
        return any(policy.type != "none" for policy in self.policies)

    def admit(self, target: routes.Target | routes.Special | None, headers: Mapping[str, str]) -> None:
        """Return when the request may proceed; raise Unauthorized (401) or Forbidden (403).

        ``target`` is what the dispatcher resolved, or None for a path that resolves to
        nothing (which the global policy guards, so errors do not tell strangers what exists).
        """
        if self.active:
            self.check(self.policy_for(target), credentials(headers))

    def policy_for(self, target: routes.Target | routes.Special | None) -> AuthPolicy:
        if target is None:
            return self.default
        if isinstance(target, routes.Special):
            return self._special(target.endpoint)
        if target.server_level:  # OIP's /v2 and /v2/health/*: health as /healthz, metadata as the global
            return self._special("healthz") if target.kind in routes.V2_HEALTH_KINDS else self.default
        if target.family == "deployment":
            deployment = self.settings.deployment(target.name)
            return deployment.auth if deployment is not None else self.default
        return self.settings.model_settings(target.name).auth

    def _special(self, endpoint: routes.Endpoint) -> AuthPolicy:
        protect = self.settings.auth.protect_health if endpoint in _HEALTH else self.settings.auth.protect_metrics
        return self.default if protect else AuthPolicy()

    def check(self, policy: AuthPolicy, creds: Credentials) -> None:
        """Return when allowed; raise Unauthorized (401) or Forbidden (403)."""
        if accepts(policy, creds):
            return
        if creds.present and not creds.malformed and any(accepts(p, creds) for p in self._guarded()):
            raise Forbidden("These credentials are not allowed here")
        message = "Invalid credentials" if creds.present else "Authentication required"
        raise Unauthorized(message, headers={"WWW-Authenticate": challenge(policy)})

    def _guarded(self) -> Iterable[AuthPolicy]:
        return (policy for policy in self.policies if policy.type != "none")


def _all_policies(settings: Settings) -> list[AuthPolicy]:
    policies = [settings.auth.policy()]
    policies += [model.auth for model in settings.models.overrides.values()]
    policies += [deployment.auth for deployment in settings.deployments.values()]
    return policies
