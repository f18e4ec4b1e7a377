"""The transport-free verbs: one function per verb, called by every protocol front.

A front turns its request into a :class:`~gateway.routing.binding.Binding` (which backend,
model, version or label, deadline), a :class:`~gateway.pipeline.services.RequestInfo` (for
metrics and the access log) and whatever it can decode without the model's signature. A verb
then does everything that does not depend on the wire format, in this order::

    signature lookup (cached)  ->  inputs converted to tensors (off the loop when large)
        ->  micro-batching  ->  backend call (deadline, retries, breaker)  ->  reply decoded

and returns plain results: output arrays for predict, reply messages for the others, which
the front encodes in its own format. Verbs raise only ``GatewayError``s. The version that
answered, as ModelServer's reply states it, is recorded in ``info.served_version`` for the
front to report (REST: the ``X-Model-Version`` header).

The conversion step is the front's, passed in as ``decode``: REST v1 turns JSON into tensors
with the signature's dtypes, other fronts bring their own typed tensors. ``size`` (the bytes
``decode`` works on) decides whether it runs on the loop or on a decode thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy.typing as npt

from gateway.backend.client import CLASSIFY, PREDICT, REGRESS, STATUS
from gateway.codec import messages, wire
from gateway.codec import predict as codec
from gateway.codec.predict import Tensor
from gateway.pipeline import batching, offload
from gateway.pipeline.services import RequestInfo, Services
from gateway.routing.binding import Binding

Outputs = dict[str, npt.NDArray[Any]]
Decode = Callable[[messages.SignatureDef], Mapping[str, Tensor]]
Select = Callable[[messages.SignatureDef], Sequence[str]]


async def predict(
    services: Services,
    binding: Binding,
    info: RequestInfo,
    signature_name: str,
    decode: Decode,
    size: int,
    select: Select | None = None,
) -> Outputs:
    """Output arrays by alias, sorted; ``signature_name`` "" means the binding's default signature.

    ``select``, when given, names the outputs to compute (``PredictRequest.output_filter``),
    chosen with the signature after ``decode`` accepted the inputs; it may raise a 400.
    The version that answered is left in ``info.served_version`` (not for a batch member
    whose merged call another request made).
    """
    signature_name = binding.signature(signature_name)
    sig = codec.find_signature(await services.signatures(binding, info), signature_name)
    tensors = await offload.run(size, decode, sig)
    output_filter = tuple(select(sig)) if select is not None else ()
    spec = binding.model_spec(signature_name)

    async def call(payload: bytes) -> batching.Answer:
        reply = await services.call(binding, PREDICT, payload, info)
        return batching.Answer(codec.output_arrays(reply), messages.replied_version(reply))

    settings = binding.settings.batching
    if not settings.enabled:
        answer = await call(wire.predict_request(spec, tensors, output_filter))
    else:
        key = batching.batch_key(binding.servable, signature_name, tensors, output_filter)
        observe = services.metrics.batch_size.labels(services.metrics.model_label(binding.name)).observe
        answer = await batching.predict(services.batcher, settings, key, sig, spec, tensors, call, observe)
        info.grpc_code = info.grpc_code or "OK"  # a batch member's call was made on another's behalf
    info.served_version = answer.version
    return answer.outputs


async def classify(
    services: Services, binding: Binding, info: RequestInfo, signature_name: str, examples: messages.Examples
) -> messages.ClassifyReply:
    request = messages.classify_request(binding.model_spec(binding.signature(signature_name)), examples)
    return _served(info, await services.call(binding, CLASSIFY, request, info))


async def regress(
    services: Services, binding: Binding, info: RequestInfo, signature_name: str, examples: messages.Examples
) -> messages.RegressReply:
    request = messages.regress_request(binding.model_spec(binding.signature(signature_name)), examples)
    return _served(info, await services.call(binding, REGRESS, request, info))


async def status(services: Services, binding: Binding, info: RequestInfo) -> messages.StatusReply:
    """ModelServer's status API ignores labels, so a label is first resolved to its version."""
    if binding.label is not None:
        binding = binding.pinned(messages.resolved_version(await services.metadata(binding, info)))
    return await services.call(binding, STATUS, messages.status_request(binding.model_spec()), info)


async def metadata(services: Services, binding: Binding, info: RequestInfo) -> messages.MetadataReply:
    return _served(info, await services.metadata(binding, info))


Reply = TypeVar("Reply", messages.ClassifyReply, messages.RegressReply, messages.MetadataReply)


def _served(info: RequestInfo, reply: Reply) -> Reply:
    info.served_version = messages.replied_version(reply)
    return reply
