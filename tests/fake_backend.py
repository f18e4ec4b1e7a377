"""A programmable fake TensorFlow ModelServer, served over real gRPC on loopback.

It speaks ``tensorflow.serving.PredictionService`` (Predict, Classify, Regress,
GetModelMetadata) and ``tensorflow.serving.ModelService/GetModelStatus`` with the
gateway's own generated messages, records every call, and answers either from a
script or from a small model registry that behaves like ModelServer::

    async with FakeModelServer() as fake:
        fake.add_model("half_plus_two", versions={1: sigs, 2: sigs}, labels={"stable": 1})
        fake.enqueue("Predict", Abort(grpc.StatusCode.INTERNAL, "boom"))  # next call only
        fake.set_reply("Predict", Delay(5.0))                             # every call
        ... point a client at fake.target ...
        fake.last("Predict").request.model_spec.name

A reply is a protobuf message, raw ``bytes`` (sent unparsed: malformed on purpose),
an :class:`Abort`, a :class:`Delay`, :data:`HANG`, or a callable
``(request, context) -> reply`` (sync or async) that returns any of these.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias, cast

import grpc
import numpy as np
from google.protobuf.message import Message

from gateway._pb.tensorflow.core.example import example_pb2
from gateway._pb.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway._pb.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
MAX_MESSAGE_BYTES = 512 * 1024 * 1024

_REQUEST_TYPES: dict[str, tuple[str, type[Message]]] = {
    "Predict": (PREDICTION_SERVICE, predict_pb2.PredictRequest),
    "Classify": (PREDICTION_SERVICE, classification_pb2.ClassificationRequest),
    "Regress": (PREDICTION_SERVICE, regression_pb2.RegressionRequest),
    "GetModelMetadata": (PREDICTION_SERVICE, get_model_metadata_pb2.GetModelMetadataRequest),
    "GetModelStatus": (MODEL_SERVICE, get_model_status_pb2.GetModelStatusRequest),
}
METHODS: tuple[str, ...] = tuple(_REQUEST_TYPES)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Abort:
    """Fail the call with this gRPC status code and message."""

    code: grpc.StatusCode
    details: str


@dataclass(frozen=True)
class Delay:
    """Wait, then answer with ``then`` (the registry's answer when ``None``)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Hang:
    """Never answer; the call ends only when the client cancels it."""


HANG = Hang()
MALFORMED = b"\xff\xff\xff"

Handler: TypeAlias = Callable[[Message, grpc.aio.ServicerContext[Any, Any]], Any]
Reply: TypeAlias = Message | bytes | Abort | Delay | Hang | Handler


@dataclass(frozen=True)
class Received:
    """One call the fake received."""

    method: str
    request: Message
    metadata: Mapping[str, str]


class RegistryError(Exception):
    """A ModelServer-style failure raised by the registry; becomes an abort."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


# --------------------------------------------------------------------------- tensors

_NUMPY: dict[types_pb2.DataType, tuple[Any, str]] = {
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_INT16: (np.int16, "int_val"),
    types_pb2.DT_INT8: (np.int8, "int_val"),
    types_pb2.DT_UINT8: (np.uint8, "int_val"),
    types_pb2.DT_UINT16: (np.uint16, "int_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_UINT32: (np.uint32, "uint32_val"),
    types_pb2.DT_UINT64: (np.uint64, "uint64_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
    types_pb2.DT_STRING: (np.object_, "string_val"),
    types_pb2.DT_HALF: (np.float16, "half_val"),
}


def dtype_enum(dtype: str | int | np.dtype[Any] | type) -> types_pb2.DataType:
    """``"DT_FLOAT"``, ``1`` or ``np.float32`` -> the DataType number."""
    if isinstance(dtype, str):
        return cast("types_pb2.DataType", types_pb2.DataType.Value(dtype))
    if isinstance(dtype, int):
        return cast("types_pb2.DataType", dtype)
    wanted = np.dtype(dtype)
    return next(num for num, (np_type, _) in _NUMPY.items() if np.dtype(np_type) == wanted)


def numpy_dtype(dtype: str | int) -> np.dtype[Any]:
    """The numpy dtype that holds values of a DataType."""
    found: np.dtype[Any] = np.dtype(_NUMPY[dtype_enum(dtype)][0])
    return found


def _shape_proto(shape: Sequence[int] | None) -> tensor_shape_pb2.TensorShapeProto:
    if shape is None:
        return tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=int(size)) for size in shape]
    return tensor_shape_pb2.TensorShapeProto(dim=dims)


def _as_array(values: Any, dtype: str | int | None) -> np.ndarray[Any, Any]:
    if dtype is None:
        return np.asarray(values)
    return np.asarray(values, dtype=numpy_dtype(dtype))


def _typed_values(array: np.ndarray[Any, Any], enum: int) -> list[Any]:
    flat = array.reshape(-1)
    if enum == types_pb2.DT_HALF:
        return [int(v) for v in flat.view(np.uint16)]
    if enum == types_pb2.DT_STRING:
        return [v if isinstance(v, bytes) else str(v).encode() for v in flat]
    return flat.tolist()


def make_tensor(values: Any, dtype: str | int | None = None, *, content: bool = False) -> tensor_pb2.TensorProto:
    """A TensorProto from (nested) values; ``content=True`` uses ``tensor_content`` bytes."""
    array = _as_array(values, dtype)
    enum = dtype_enum(dtype if dtype is not None else array.dtype)
    proto = tensor_pb2.TensorProto(dtype=enum, tensor_shape=_shape_proto(array.shape))
    if content and enum != types_pb2.DT_STRING:
        proto.tensor_content = np.ascontiguousarray(array, dtype=numpy_dtype(enum).newbyteorder("<")).tobytes()
    else:
        getattr(proto, _NUMPY[enum][1]).extend(_typed_values(array, enum))
    return proto


def _fill(values: np.ndarray[Any, Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    size = int(np.prod(shape, dtype=np.int64))
    if values.size == size:
        return values.reshape(shape)
    if values.size == 0:
        return np.zeros(shape, dtype=values.dtype)
    return np.concatenate([values, np.repeat(values[-1:], size - values.size)]).reshape(shape)


def tensor_shape(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The dims of a TensorProto."""
    return tuple(int(dim.size) for dim in proto.tensor_shape.dim)


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray[Any, Any]:
    """Decode a TensorProto (typed fields or ``tensor_content``) like ``tf.make_ndarray``."""
    np_type, field_name = _NUMPY[proto.dtype]
    shape = tensor_shape(proto)
    if proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=np.dtype(np_type).newbyteorder("<"))
        return flat.astype(np_type).reshape(shape)
    raw = list(getattr(proto, field_name))
    if proto.dtype == types_pb2.DT_HALF:
        return _fill(np.asarray(raw, dtype=np.uint16).view(np.float16), shape)
    if proto.dtype == types_pb2.DT_STRING:
        strings = np.empty(len(raw), dtype=object)
        strings[:] = raw
        return _fill(strings, shape)
    return _fill(np.asarray(raw, dtype=np_type), shape)


# --------------------------------------------------------------------------- signatures

TensorSpec: TypeAlias = tuple[str, Sequence[int] | None]


def tensor_info(alias: str, spec: TensorSpec) -> meta_graph_pb2.TensorInfo:
    """A TensorInfo named ``<alias>:0`` with the dtype and shape of ``spec``."""
    dtype, shape = spec
    return meta_graph_pb2.TensorInfo(name=f"{alias}:0", dtype=dtype_enum(dtype), tensor_shape=_shape_proto(shape))


def signature(
    inputs: Mapping[str, TensorSpec],
    outputs: Mapping[str, TensorSpec],
    method_name: str = PREDICT_METHOD,
) -> meta_graph_pb2.SignatureDef:
    """``signature(inputs={"x": ("DT_FLOAT", [-1])}, outputs={"y": ("DT_FLOAT", [-1])})``."""
    sig = meta_graph_pb2.SignatureDef(method_name=method_name)
    for alias, spec in inputs.items():
        sig.inputs[alias].CopyFrom(tensor_info(alias, spec))
    for alias, spec in outputs.items():
        sig.outputs[alias].CopyFrom(tensor_info(alias, spec))
    return sig


def example(features: Mapping[str, tuple[str, Sequence[Any]] | None]) -> example_pb2.Example:
    """``example({"f": ("float", [1.5]), "i": ("int64", [3]), "s": ("bytes", [b"x"]), "e": None})``.

    ``None`` is a Feature with no kind set (what TF Serving makes of ``[]``).
    """
    ex = example_pb2.Example()
    for name, spec in features.items():
        feature = ex.features.feature[name]
        if spec is None:
            feature.SetInParent()
            continue
        kind, values = spec
        getattr(feature, f"{kind}_list").value.extend(values)
    return ex


# --------------------------------------------------------------------------- registry


@dataclass
class FakeModel:
    """One model of the registry: versions -> signature defs, labels -> versions."""

    name: str
    versions: dict[int, dict[str, meta_graph_pb2.SignatureDef]]
    labels: dict[str, int] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)


def _spec_text(spec: model_pb2.ModelSpec) -> str:
    if spec.HasField("version"):
        return f"Specific({spec.name}, {spec.version.value})"
    return f"Latest({spec.name})"


def _not_found(spec: model_pb2.ModelSpec) -> RegistryError:
    return RegistryError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {_spec_text(spec)}")


def _echo(values: np.ndarray[Any, Any], out_dtype: int) -> np.ndarray[Any, Any]:
    """The fake model: floats become ``x * 0.5 + 2`` (half_plus_two); others are echoed."""
    if values.dtype.kind == "f":
        values = values * values.dtype.type(0.5) + values.dtype.type(2)
    if out_dtype == types_pb2.DT_STRING:
        return values
    return values.astype(numpy_dtype(out_dtype))


def _examples(
    request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
) -> list[Any]:
    kind = request.input.WhichOneof("kind")
    return list(getattr(request.input, kind).examples) if kind else []


def _number_sum(ex: example_pb2.Example) -> float:
    total = 0.0
    for feature in ex.features.feature.values():
        kind = feature.WhichOneof("kind")
        if kind in ("float_list", "int64_list"):
            total += float(sum(getattr(feature, kind).value))
    return total


class ModelRegistry:
    """Answers like ModelServer does for the models it was given."""

    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}

    def resolve(self, spec: model_pb2.ModelSpec) -> tuple[FakeModel, int]:
        """The model and the version a ModelSpec names, or ModelServer's error."""
        model = self.models.get(spec.name)
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            return self._by_label(model, spec.version_label, spec)
        if model is None:
            raise _not_found(spec)
        if choice == "version":
            if spec.version.value not in model.versions:
                raise _not_found(spec)
            return model, spec.version.value
        return model, max(model.versions)

    @staticmethod
    def _by_label(model: FakeModel | None, label: str, spec: model_pb2.ModelSpec) -> tuple[FakeModel, int]:
        if model is None or label not in model.labels:
            raise RegistryError(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
        version = model.labels[label]
        if version not in model.versions:
            raise _not_found(spec)
        return model, version

    def signature_def(self, spec: model_pb2.ModelSpec) -> tuple[int, meta_graph_pb2.SignatureDef]:
        """The resolved version and the signature a request names, or ModelServer's error."""
        model, version = self.resolve(spec)
        name = spec.signature_name or DEFAULT_SIGNATURE
        sigs = model.versions[version]
        if name not in sigs:
            raise RegistryError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return version, sigs[name]

    def _answer_spec(self, spec: model_pb2.ModelSpec, version: int) -> model_pb2.ModelSpec:
        answer = model_pb2.ModelSpec(name=spec.name, signature_name=spec.signature_name or DEFAULT_SIGNATURE)
        answer.version.value = version
        return answer

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Validate inputs against the signature, then run the fake model on every output."""
        version, sig = self.signature_def(request.model_spec)
        sent, wanted = set(request.inputs), set(sig.inputs)
        if sent != wanted:
            raise RegistryError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(wanted)} len({sorted(sent)}) != "
                f"len({sorted(wanted)}). Sent extra: {sorted(sent - wanted)}. "
                f"Missing but required: {sorted(wanted - sent)}.",
            )
        response = predict_pb2.PredictResponse(model_spec=self._answer_spec(request.model_spec, version))
        inputs = sorted(sig.inputs)
        for index, alias in enumerate(sorted(sig.outputs)):
            source = to_ndarray(request.inputs[inputs[min(index, len(inputs) - 1)]])
            out_dtype = sig.outputs[alias].dtype
            response.outputs[alias].CopyFrom(make_tensor(_echo(source, out_dtype), out_dtype))
        return response

    def classify(self, request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
        """Every example gets the classes ``neg`` 0.25 and ``pos`` 0.75."""
        version = self.resolve(request.model_spec)[1]
        response = classification_pb2.ClassificationResponse(model_spec=self._answer_spec(request.model_spec, version))
        for _ in _examples(request):
            classes = response.result.classifications.add().classes
            classes.add(label="neg", score=0.25)
            classes.add(label="pos", score=0.75)
        return response

    def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        """Every example regresses to ``0.5 * (sum of its numbers) + 2``."""
        version = self.resolve(request.model_spec)[1]
        response = regression_pb2.RegressionResponse(model_spec=self._answer_spec(request.model_spec, version))
        for ex in _examples(request):
            response.result.regressions.add(value=0.5 * _number_sum(ex) + 2)
        return response

    def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest) -> Message:
        """The resolved version's SignatureDefMap, like ModelServer's GetModelMetadata."""
        model, version = self.resolve(request.model_spec)
        answer = model_pb2.ModelSpec(name=model.name)
        answer.version.value = version
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=answer)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in model.versions[version].items():
            sig_map.signature_def[name].CopyFrom(sig)
        response.metadata["signature_def"].Pack(sig_map)
        return response

    def status(self, request: get_model_status_pb2.GetModelStatusRequest) -> Message:
        """Version states, newest first; like ModelServer, a label is ignored."""
        spec = request.model_spec
        model = self.models.get(spec.name)
        if model is None:
            raise RegistryError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        versions = sorted(model.versions, reverse=True)
        if spec.HasField("version"):
            if spec.version.value not in model.versions:
                raise RegistryError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {spec.version.value} of model {spec.name}",
                )
            versions = [spec.version.value]
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            state = get_model_status_pb2.ModelVersionStatus.State.Value(model.states.get(version, "AVAILABLE"))
            response.model_version_status.add(version=version, state=state).status.SetInParent()
        return response

    def answer(self, method: str, request: Any) -> Message:
        """The registry's reply for one call."""
        handlers: dict[str, Callable[[Any], Message]] = {
            "Predict": self.predict,
            "Classify": self.classify,
            "Regress": self.regress,
            "GetModelMetadata": self.metadata,
            "GetModelStatus": self.status,
        }
        return handlers[method](request)


# --------------------------------------------------------------------------- server


def _serialize(reply: Message | bytes) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    pairs = context.invocation_metadata() or ()
    return {str(key): value if isinstance(value, str) else repr(value) for key, value in pairs}


class FakeModelServer:
    """A scripted ModelServer on ``127.0.0.1``; an async context manager."""

    def __init__(self, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.registry = ModelRegistry()
        self.received: list[Received] = []
        self.cancelled: list[str] = []
        self._queues: dict[str, deque[Reply]] = {method: deque() for method in METHODS}
        self._defaults: dict[str, Reply] = {}
        self._options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self._server: grpc.aio.Server | None = None
        self._port = 0

    # ---- lifecycle

    async def __aenter__(self) -> FakeModelServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(None)

    @property
    def port(self) -> int:
        """The bound port (kept across stop/restart)."""
        return self._port

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``, for a gRPC channel."""
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the server is serving now."""
        return self._server is not None

    async def start(self) -> None:
        """Serve on the previous port, or on a free one the first time."""
        server = grpc.aio.server(options=self._options)
        server.add_generic_rpc_handlers(self._handlers())
        self._port = server.add_insecure_port(f"127.0.0.1:{self._port}")
        if self._port == 0:
            raise RuntimeError("fake ModelServer could not bind its port")
        await server.start()
        self._server = server

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving (a dead backend until :meth:`restart`)."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace)

    async def restart(self) -> None:
        """Come back on the same port."""
        await self.stop(None)
        await self.start()

    # ---- scripting

    def enqueue(self, method: str, *replies: Reply) -> None:
        """Answer the next calls of ``method`` with these replies, in order."""
        self._queues[self._known(method)].extend(replies)

    def set_reply(self, method: str, reply: Reply | None) -> None:
        """Answer every call of ``method`` (after the queue) with ``reply``; ``None`` = registry."""
        if reply is None:
            self._defaults.pop(self._known(method), None)
        else:
            self._defaults[self._known(method)] = reply

    def add_model(
        self,
        name: str,
        versions: Mapping[int, Mapping[str, meta_graph_pb2.SignatureDef]],
        labels: Mapping[str, int] | None = None,
        states: Mapping[int, str] | None = None,
    ) -> None:
        """Register a model: ``versions={1: {"serving_default": sig}}``, ``labels={"stable": 1}``."""
        self.registry.models[name] = FakeModel(
            name, {v: dict(sigs) for v, sigs in versions.items()}, dict(labels or {}), dict(states or {})
        )

    def reset(self) -> None:
        """Forget scripts, recorded calls and models."""
        self.clear_calls()
        self.registry.models.clear()
        self._defaults.clear()
        for queue in self._queues.values():
            queue.clear()

    def clear_calls(self) -> None:
        """Forget recorded calls and cancellations."""
        self.received.clear()
        self.cancelled.clear()

    # ---- inspection

    def calls(self, method: str | None = None) -> list[Received]:
        """Calls received, in order, optionally only those of one method."""
        return [call for call in self.received if method is None or call.method == method]

    def last(self, method: str) -> Received:
        """The latest call of ``method``; fails if there was none."""
        calls = self.calls(method)
        if not calls:
            raise AssertionError(f"fake ModelServer received no {method} call; got {self.methods()}")
        return calls[-1]

    def methods(self) -> list[str]:
        """The method names received, in order."""
        return [call.method for call in self.received]

    # ---- serving

    @staticmethod
    def _known(method: str) -> str:
        if method not in _REQUEST_TYPES:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        return method

    def _handlers(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        services: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
        for method, (service, request_type) in _REQUEST_TYPES.items():
            services.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
                self._endpoint(method),
                request_deserializer=request_type.FromString,
                response_serializer=_serialize,
            )
        return [grpc.method_handlers_generic_handler(name, table) for name, table in services.items()]

    def _endpoint(
        self, method: str
    ) -> Callable[[Message, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message | bytes]]:
        async def endpoint(request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Message | bytes:
            self.received.append(Received(method, request, _metadata(context)))
            try:
                return await self._play(method, self._next(method), request, context)
            except asyncio.CancelledError:
                self.cancelled.append(method)
                raise

        return endpoint

    def _next(self, method: str) -> Reply | None:
        queue = self._queues[method]
        return queue.popleft() if queue else self._defaults.get(method)

    async def _play(
        self, method: str, reply: Reply | None, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Message | bytes:
        if reply is None:
            try:
                return self.registry.answer(method, request)
            except RegistryError as error:
                reply = Abort(error.code, error.details)
        if isinstance(reply, Message | bytes):
            return reply
        if isinstance(reply, Abort):
            await context.abort(reply.code, reply.details)
        if isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            return await self._play(method, reply.then, request, context)
        if isinstance(reply, Hang):
            await asyncio.Event().wait()
        result = reply(request, context)  # type: ignore[operator]
        if inspect.isawaitable(result):
            result = await result
        return await self._play(method, result, request, context)


def model_versions(sigs: Mapping[str, meta_graph_pb2.SignatureDef], versions: Iterable[int]) -> dict[int, Any]:
    """The same signatures for several versions."""
    return {version: dict(sigs) for version in versions}
