"""The README's auth claims, through real sockets: ``auth.protect_metrics`` and per-model overrides.

config.yaml: ``models.overrides.<name>.auth`` is a *partial* policy (each key given replaces the
global one), and a deployment inherits global -> its model's override -> its own ``auth``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from harness import MakeGatewayClient, raw_url

KEY = "model-key-0123"
OTHER_KEY = "global-key-4567"
PASSWORD = "alice's password"
METRICS_PATHS = ("/metrics", "/monitoring/prometheus/metrics")


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMS_MODEL_KEY", KEY)
    monkeypatch.setenv("CLAIMS_GLOBAL_KEY", OTHER_KEY)
    monkeypatch.setenv("CLAIMS_PASSWORD", PASSWORD)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def status(client: Any, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    body = {"instances": [1.0]} if method == "POST" else None
    async with client.session.request(method, raw_url(client, path), json=body, headers=headers or {}) as resp:
        await resp.read()
        return resp.status


# --------------------------------------------------------------------------- protect_metrics

GLOBAL_KEY_AUTH = {"type": "api_key", "api_keys": [{"env": "CLAIMS_GLOBAL_KEY"}]}


@pytest.mark.parametrize("path", METRICS_PATHS)
async def test_metrics_need_auth_only_when_protected(make_gateway_client: MakeGatewayClient, path: str) -> None:
    """README: "Health and metrics stay open unless auth.protect_health / auth.protect_metrics"."""
    open_ = await make_gateway_client({"auth": {**GLOBAL_KEY_AUTH, "protect_metrics": False}})
    assert await status(open_, "GET", path) == 200
    assert await status(open_, "GET", "/v1/models/half_plus_two") == 401, "the API itself stays protected"

    locked = await make_gateway_client({"auth": {**GLOBAL_KEY_AUTH, "protect_metrics": True}})
    assert await status(locked, "GET", path) == 401
    assert await status(locked, "GET", path, {"X-API-Key": "wrong"}) == 401
    assert await status(locked, "GET", path, {"X-API-Key": OTHER_KEY}) == 200
    assert await status(locked, "GET", path, {"Authorization": f"Bearer {OTHER_KEY}"}) == 200
    assert await status(locked, "GET", "/healthz") == 200, "protect_metrics leaves health open"


# --------------------------------------------------------------------------- per-model overrides

# Global: Basic auth for alice. The half_plus_two override changes only the type (to "any") and
# adds a key, so alice (inherited from the global block) and the key both get in there.
# The multi override switches auth off for that model alone.
OVERRIDES = {
    "auth": {"type": "basic", "basic_users": {"alice": {"password_env": "CLAIMS_PASSWORD"}}},
    "models": {
        "overrides": {
            "half_plus_two": {"auth": {"type": "any", "api_keys": [{"env": "CLAIMS_MODEL_KEY"}]}},
            "multi": {"auth": {"type": "none"}},
        }
    },
    "deployments": {
        "my-dep": {"model": "half_plus_two"},  # inherits the model's override
        "multi-dep": {"model": "multi"},  # inherits "none"
        "key-only-dep": {"model": "half_plus_two", "auth": {"type": "api_key"}},  # partial again
    },
}


async def test_per_model_auth_overrides(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client(OVERRIDES)
    alice, key = basic("alice", PASSWORD), {"X-API-Key": KEY}
    # The global policy, on a model without an override: Basic only.
    types = "/v1/models/types"
    assert await status(client, "GET", types) == 401
    assert await status(client, "GET", types, alice) == 200
    assert await status(client, "GET", types, key) == 403, "the key is valid elsewhere, not here"
    # The partial override: type "any", alice inherited from the global block, plus the key.
    for path in ("/v1/models/half_plus_two", "/model-serving/my-dep"):
        assert await status(client, "GET", path) == 401, path
        assert await status(client, "GET", path, alice) == 200, path
        assert await status(client, "GET", path, key) == 200, path
        assert await status(client, "GET", path, basic("alice", "nope")) == 401, path
    assert await status(client, "POST", "/v1/models/half_plus_two:predict", key) == 200
    assert await status(client, "POST", "/v1/models/half_plus_two/versions/1:predict") == 401
    # Auth switched off for one model, and for the deployment of it.
    assert await status(client, "POST", "/v1/models/multi:predict") != 401
    assert await status(client, "GET", "/v1/models/multi") == 200
    assert await status(client, "GET", "/model-serving/multi-dep") == 200
    # A deployment's own partial block narrows its model's policy to API keys (keys inherited).
    assert await status(client, "GET", "/model-serving/key-only-dep", key) == 200
    assert await status(client, "GET", "/model-serving/key-only-dep", alice) == 403
    assert await status(client, "GET", "/model-serving/key-only-dep") == 401
