"""Shadow copies: a deployment's requests copied to other servables, compared, never returned.

For a deployment with ``shadow`` arms, ``Services.call_raw`` asks :meth:`Shadows.draw` which
arms copy this Predict, Classify or Regress call (each draws its ``percent``), then makes the
primary call. Once the primary call has been handed to the channel (``Backend.call_raw``'s
``on_sent``), each copy runs as a task of its own::

    model_spec rewritten for the arm -> Backend.call_once (the shadow's deadline)
      -> the primary's reply awaited -> both decoded and compared (``compare.py``; on a decode
         thread when large) -> tfs_gateway_shadow_* metrics; an access line for a disagreement
         or an error

The contract:

* A copy never delays or changes the client's answer: the client's call never awaits one, and
  nothing a copy does (fail, hang, time out, disagree) reaches it.
* Each deployment caps its copies in flight (``shadow_max_in_flight``); a copy drawn while the
  cap is full is not sent and counts as ``dropped``.
* A copy's deadline (``shadow_timeout_seconds``) runs from when it is sent; a copy that fails or
  runs out counts as ``error``.
* Copies share the backend's channel, but not its limiter, retry budget or circuit breaker
  (``Backend.call_once``): a failing shadow cannot open the circuit on the primary traffic, nor
  spend the retries or the slots its calls need.
* When the primary call fails, or its client goes away, its copies are cancelled and not
  counted: there is nothing to compare them with.
* A copy holds its config generation: after a SIGHUP reload it finishes on the old backends,
  which close once it ends (within its deadline). A SIGTERM drain waits for client requests only,
  then cancels the copies still running (``ServicesRef.close``).
* Micro-batched predicts are copied once per merged call, under the request id of the request
  whose task made the call; the percent is drawn per call.

A cap counts per generation: right after a reload, the old generation's copies still running
and the new one's may together reach twice ``shadow_max_in_flight``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gateway.backend.client import CLASSIFY, PREDICT, REGRESS, Backend, Rpc
from gateway.codec import examples as codec_examples
from gateway.codec import messages
from gateway.codec import predict as codec_predict
from gateway.config import DeploymentSettings, Settings, ShadowArm
from gateway.errors import GatewayError
from gateway.ops import accesslog
from gateway.ops.metrics import Metrics
from gateway.pipeline import compare, offload
from gateway.routing.binding import Binding, shadow_binding

log = logging.getLogger("tfs_gateway")

# Replies -> the arrays ``compare`` compares, for the calls a shadow copies.
_DECODE: Mapping[str, Callable[[Any], compare.Arrays]] = {
    PREDICT.name: codec_predict.output_arrays,
    CLASSIFY.name: codec_examples.classify_arrays,
    REGRESS.name: codec_examples.regress_arrays,
}
_LOGGED = ("disagree", "error")


class Shadows:
    """One config generation's shadow copies: the draw, the cap, the running tasks."""

    def __init__(self, settings: Settings, metrics: Metrics, backends: Mapping[str, Backend], rng: random.Random):
        self._settings = settings
        self._metrics = metrics
        self._backends = backends
        self._rng = rng
        self._running: dict[str, int] = {}  # copies held per deployment, sent or about to be
        self._tasks: set[asyncio.Task[None]] = set()
        metrics.set_shadow_arms((name, arm.name) for name, d in settings.deployments.items() for arm in d.shadow or ())

    def draw(self, binding: Binding, rpc: Rpc[Any], payload: bytes, info: RequestInfoLike) -> Shot | None:
        """The copies of this call, their slots held; None (the common case) when there are none."""
        deployment = binding.settings
        if not isinstance(deployment, DeploymentSettings) or deployment.shadow is None or rpc.name not in _DECODE:
            return None
        targets = [t for arm in deployment.shadow if (t := self._take(binding, deployment, arm)) is not None]
        return Shot(self, binding, deployment, rpc, payload, info, targets) if targets else None

    def _take(self, binding: Binding, deployment: DeploymentSettings, arm: ShadowArm) -> Binding | None:
        target = shadow_binding(binding, deployment, arm)
        if target.servable == binding.servable:
            return None  # the URL chose the shadow's own servable: nothing to compare it with
        if arm.percent is not None and arm.percent < 100 and self._rng.random() * 100 >= arm.percent:
            return None
        if self._running.get(binding.name, 0) >= deployment.shadow_max_in_flight:
            self._metrics.shadow_requests.labels(binding.name, arm.name, "dropped").inc()
            return None
        self._hold(binding.name, 1)
        return target

    def _hold(self, deployment: str, step: int) -> None:
        self._running[deployment] = self._running.get(deployment, 0) + step
        self._metrics.shadow_in_flight.inc(step)

    def release(self, target: Binding) -> None:
        """Give back the slot of a copy that was never sent."""
        self._hold(target.name, -1)

    def start(self, shot: Shot, target: Binding) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._run(shot, target))
        self._tasks.add(task)
        # A done callback, not a finally: a task cancelled before its first step never runs its body.
        task.add_done_callback(functools.partial(self._ended, target))
        return task

    def _ended(self, target: Binding, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.release(target)

    async def _run(self, shot: Shot, target: Binding) -> None:
        try:
            verdict = await self._verdict(shot, target)
        except GatewayError as exc:
            self._report(shot, target, "error", None, exc.message)
        except Exception:  # a fire-and-forget task: nobody else would ever see this
            log.exception("shadow copy to %s of deployment %s failed", target.arm, target.name)
            self._report(shot, target, "error", None, "internal error")
        else:
            self._report(shot, target, "agree" if verdict.agree else "disagree", verdict, verdict.reason)

    async def _verdict(self, shot: Shot, target: Binding) -> compare.Verdict:
        # Rewriting the model spec copies the whole request: a large one is copied off the loop.
        payload = await offload.run(len(shot.payload), _retargeted, shot.payload, target)
        backend = self._backends[target.backend]
        metadata = {"x-request-id": shot.request_id}
        reply = await backend.call_once(shot.rpc, payload, timeout=target.timeout_seconds, metadata=metadata)
        primary = await shot.primary
        return await offload.run(len(primary) + len(reply), self._compare, shot, target, primary, reply)

    def _compare(self, shot: Shot, target: Binding, primary: bytes, reply: bytes) -> compare.Verdict:
        decode = _DECODE[shot.rpc.name]
        ours = decode(self._backends[shot.binding.backend].parse_reply(shot.rpc, primary))
        theirs = decode(self._backends[target.backend].parse_reply(shot.rpc, reply))
        tolerance = shot.deployment.shadow_tolerance
        return compare.compare(ours, theirs, tolerance.rtol, tolerance.atol)

    def _report(self, shot: Shot, target: Binding, result: str, verdict: compare.Verdict | None, reason: str) -> None:
        self._metrics.shadow_requests.labels(target.name, target.arm, result).inc()
        if verdict is not None and verdict.max_abs_diff is not None:
            self._metrics.shadow_max_abs_diff.labels(target.name, target.arm).observe(verdict.max_abs_diff)
        if result in _LOGGED and self._settings.server.access_log:
            accesslog.write(
                accesslog.shadow_record(
                    request_id=shot.request_id,
                    deployment=target.name,
                    arm=target.arm,
                    primary_arm=shot.binding.arm,
                    result=result,
                    rpc=shot.rpc.name,
                    reason=reason,
                    output=verdict.output if verdict else None,
                    index=list(verdict.index) if verdict and verdict.index is not None else None,
                    primary=verdict.primary if verdict else None,
                    shadow=verdict.shadow if verdict else None,
                    max_abs_diff=verdict.max_abs_diff if verdict else None,
                )
            )

    async def wait(self) -> None:
        """Until every copy has ended; each ends within its deadline (plus its comparison)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel(self) -> None:
        """End every copy now, uncounted (shutdown: client requests are what a drain waits for)."""
        for task in list(self._tasks):
            task.cancel()


def _retargeted(payload: bytes, target: Binding) -> bytes:
    """The request with its model spec pointed at ``target``'s servable, its signature kept."""
    spec = messages.request_model_spec(payload)
    return messages.with_model_spec(
        payload, messages.model_spec(target.model, target.version, target.label, spec.signature_name)
    )


class RequestInfoLike(Protocol):
    """What a shot needs of ``services.RequestInfo`` (whose module imports this one)."""

    request_id: str


class Shot:
    """One call's copies: started once the primary call is sent, compared once it answers."""

    __slots__ = ("_pending", "_shadows", "_tasks", "binding", "deployment", "payload", "primary", "request_id", "rpc")

    def __init__(
        self,
        shadows: Shadows,
        binding: Binding,
        deployment: DeploymentSettings,
        rpc: Rpc[Any],
        payload: bytes,
        info: RequestInfoLike,
        targets: list[Binding],
    ) -> None:
        self._shadows = shadows
        self._pending = targets
        self._tasks: list[asyncio.Task[None]] = []
        self.binding, self.deployment, self.rpc, self.payload = binding, deployment, rpc, payload
        self.request_id = info.request_id
        self.primary: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def sent(self) -> None:
        """The primary call is on its way: start the copies (``Backend.call_raw``'s ``on_sent``)."""
        targets, self._pending = self._pending, []
        self._tasks = [self._shadows.start(self, target) for target in targets]

    def settle(self, reply: bytes | None) -> None:
        """The primary's reply, or None when it failed: then the copies are cancelled, uncounted."""
        for target in self._pending:  # never sent (the primary failed before it was)
            self._shadows.release(target)
        self._pending = []
        if reply is not None:
            self.primary.set_result(reply)
            return
        self.primary.cancel()
        for task in self._tasks:
            task.cancel()
