"""Loaded model versions, their lifecycle states, and request routing.

Mirrors ModelServer's file-system source + manager: each poll lists numeric version
folders under a model's base path, the version policy picks the aspired ones, new ones go
START -> LOADING -> AVAILABLE, and versions no longer aspired are unloaded and stay listed
as END (as ModelServer's servable state monitor keeps them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from devserver.config_file import ModelConfig
from devserver.errors import ServingError, invalid_argument, not_found, status_code_from_int

log = logging.getLogger("devserver.models")

State = get_model_status_pb2.ModelVersionStatus.State
SERVE_TAG = "serve"
# ModelServer retries a failing load a few times before giving up on that version.
MAX_LOAD_ATTEMPTS = 6


@dataclass
class Servable:
    """One loaded version: the SavedModel's own signature defs plus its callable functions."""

    name: str
    version: int
    path: Path
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    functions: dict[str, Callable[..., dict[str, tf.Tensor]]]
    # Holding the loaded object keeps its variables alive as long as the servable is used.
    loaded: Any = None


def read_signature_defs(export_dir: Path) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The signature defs of the `serve` MetaGraph, straight from saved_model.pb.

    Metadata must show the real TensorInfo names, dtypes and shapes, which the TF2
    loaded object does not expose.
    """
    saved_model = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ServingError(
        grpc.StatusCode.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. "
        f"To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        f"`saved_model_cli`",
    )


def load_servable(name: str, version: int, path: Path) -> Servable:
    """Load a SavedModel version; errors become ServingErrors for the status API."""
    try:
        signature_defs = read_signature_defs(path)
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    except ServingError:
        raise
    except FileNotFoundError as exc:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}",
        ) from exc
    except tf.errors.OpError as exc:
        raise ServingError(status_code_from_int(exc.error_code), exc.message) from exc
    except Exception as exc:  # a corrupt model can fail in many ways; report, don't crash
        raise ServingError(grpc.StatusCode.UNKNOWN, f"Failed to load {path}: {exc}") from exc
    functions = {key: loaded.signatures[key] for key in loaded.signatures}
    return Servable(name, version, path, signature_defs, functions, loaded)


@dataclass
class VersionRecord:
    """What the status API reports for one version."""

    state: int = State.START
    servable: Servable | None = None
    error: ServingError | None = None
    attempts: int = 0


@dataclass
class ModelEntry:
    config: ModelConfig
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    # What the last poll found on disk (None: base path unreadable), to log changes only.
    last_seen: set[int] | None = None
    polled: bool = False


def list_versions_on_disk(base_path: Path) -> set[int] | None:
    """Numeric subfolders of base_path; None when the base path cannot be read.

    ModelServer keeps serving what it has when the base path disappears (the poll errors),
    but unloads everything when the folder exists and is empty.
    """
    try:
        entries = list(base_path.iterdir())
    except OSError:
        return None
    # isascii(): str.isdigit() also accepts digits such as '²' that int() rejects.
    return {int(e.name) for e in entries if e.name.isascii() and e.name.isdigit() and e.is_dir()}


class ModelRegistry:
    """Thread-safe map of model -> versions, updated by polling the file system."""

    def __init__(
        self,
        configs: list[ModelConfig],
        loader: Callable[[str, int, Path], Servable] = load_servable,
    ) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._models = {c.name: ModelEntry(c) for c in configs}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        # Only one poll at a time: a slow load must not be started twice.
        self._poll_lock = threading.Lock()

    # ----- polling -------------------------------------------------------------------

    def poll_once(self) -> list[ServingError]:
        """Bring every model in line with its base path; return the load errors of this poll."""
        errors: list[ServingError] = []
        with self._poll_lock:
            for entry in list(self._models.values()):
                errors.extend(self._sync_model(entry))
        return errors

    def _sync_model(self, entry: ModelEntry) -> list[ServingError]:
        on_disk = list_versions_on_disk(entry.config.base_path)
        # Say so once per change, not on every poll.
        if not on_disk and (not entry.polled or on_disk != entry.last_seen):
            problem = "Could not find base path" if on_disk is None else "No versions found under base path"
            log.warning("%s %s for servable %s", problem, entry.config.base_path, entry.config.name)
        entry.last_seen, entry.polled = on_disk, True
        if on_disk is None:
            return []
        aspired = entry.config.policy.aspired(on_disk)
        errors = [e for v in sorted(aspired) if (e := self._ensure_loaded(entry, v)) is not None]
        for version in self._loaded_versions(entry) - aspired:
            self._unload(entry, version)
        return errors

    def _loaded_versions(self, entry: ModelEntry) -> set[int]:
        with self._lock:
            return {v for v, r in entry.versions.items() if r.state == State.AVAILABLE}

    def _ensure_loaded(self, entry: ModelEntry, version: int) -> ServingError | None:
        name = entry.config.name
        with self._lock:
            record = entry.versions.get(version)
            if record is not None and (
                record.state == State.AVAILABLE or (record.error is not None and record.attempts >= MAX_LOAD_ATTEMPTS)
            ):
                return None
            record = VersionRecord(state=State.LOADING, attempts=record.attempts if record and record.error else 0)
            entry.versions[version] = record
        path = entry.config.base_path / str(version)
        log.info("Loading servable version {name: %s version: %d} from %s", name, version, path)
        try:
            servable = self._loader(name, version, path)
        except ServingError as exc:
            log.error("Loading servable {name: %s version: %d} failed: %s", name, version, exc.message)
            with self._lock:
                entry.versions[version] = VersionRecord(State.END, None, exc, record.attempts + 1)
            return exc
        with self._lock:
            entry.versions[version] = VersionRecord(State.AVAILABLE, servable)
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)
        return None

    def _unload(self, entry: ModelEntry, version: int) -> None:
        with self._lock:
            # Requests already holding the servable finish with it; new ones cannot find it.
            entry.versions[version] = VersionRecord(State.END)
        log.info("Unloaded servable version {name: %s version: %d}", entry.config.name, version)

    def start_polling(self, interval_seconds: float) -> None:
        """Poll in the background; ModelServer polls only once when the interval is 0."""
        if interval_seconds <= 0:
            return

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.poll_once()
                except Exception:  # keep serving whatever happens on disk
                    log.exception("File system poll failed")

        self._poller = threading.Thread(target=run, name="fs-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)

    # ----- routing -------------------------------------------------------------------

    def resolve(self, spec: model_pb2.ModelSpec) -> Servable:
        """The servable a request's ModelSpec names, with ModelServer's errors."""
        name = spec.name
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            version = self._version_for_label(name, spec.version_label)
        elif choice == "version":
            version = spec.version.value
        else:
            return self._latest(name)
        with self._lock:
            entry = self._models.get(name)
            record = entry.versions.get(version) if entry else None
            if record is not None and record.servable is not None:
                return record.servable
        raise not_found(f"Servable not found for request: Specific({name}, {version})")

    def _version_for_label(self, name: str, label: str) -> int:
        entry = self._models.get(name)
        if entry is None or label not in entry.config.labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return entry.config.labels[label]

    def _latest(self, name: str) -> Servable:
        with self._lock:
            entry = self._models.get(name)
            available = [r.servable for r in entry.versions.values() if r.servable] if entry else []
        if not available:
            raise not_found(f"Servable not found for request: Latest({name})")
        return max(available, key=lambda s: s.version)

    # ----- status --------------------------------------------------------------------

    def version_states(self, name: str) -> list[tuple[int, VersionRecord]]:
        """(version, record) pairs, highest version first, as ModelServer lists them."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                return []
            return sorted(
                ((v, VersionRecord(r.state, None, r.error, r.attempts)) for v, r in entry.versions.items()),
                reverse=True,
                key=lambda item: item[0],
            )

    def summary(self) -> dict[str, list[int]]:
        """Available versions per model, for the startup log."""
        with self._lock:
            return {
                name: sorted(v for v, r in entry.versions.items() if r.state == State.AVAILABLE)
                for name, entry in self._models.items()
            }
