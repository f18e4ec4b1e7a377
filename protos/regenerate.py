"""Regenerate gateway/_pb from the .proto files in this folder.

Usage: python protos/regenerate.py [--out DIR]

The stubs are post-processed so they can live in one process with TensorFlow:

* imports point at ``gateway._pb.tensorflow...`` (and ``gateway._pb.inference``) instead of
  the real ``tensorflow`` / ``tensorflow_serving`` packages (or tritonclient's and kserve's
  ``inference`` protos, which share the Open Inference Protocol's package name);
* every file is added to the private pool in ``gateway/_pb/_pool.py`` rather
  than protobuf's default pool, where TensorFlow registers its own
  ``tensorflow.TensorProto`` and a second definition would clash (and where
  tritonclient registers ``inference.ModelInferRequest``).

Message and package names stay upstream's, so the wire format and the gRPC
method paths (``/tensorflow.serving.PredictionService/Predict``) are identical.
``tests/test_protos.py`` fails when the committed stubs differ from a fresh run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT.parent / "gateway" / "_pb"
PACKAGE = "gateway._pb"

POOL_MODULE = '''"""The descriptor pool that holds every gateway proto (generated; see protos/regenerate.py).

TensorFlow registers ``tensorflow.TensorProto`` and friends in protobuf's default
pool, and tritonclient and kserve register ``inference.*`` there; ours live here so
each can be imported in one process with the gateway, in either order.
"""

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
for _well_known in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)
'''

_IMPORT = re.compile(r"^(from|import) (tensorflow(?:_serving)?|inference)\b", re.MULTILINE)
_MODULE_NAME = re.compile(r"'((?:tensorflow|tensorflow_serving|inference)\.[\w.]+_pb2)'")


def _rewrite(text: str) -> str:
    text = _IMPORT.sub(rf"\1 {PACKAGE}.\2", text)
    text = _MODULE_NAME.sub(rf"'{PACKAGE}.\1'", text)
    return text.replace(
        "_descriptor_pool.Default().AddSerializedFile(",
        "_gateway_pool.POOL.AddSerializedFile(",
    ).replace(
        "from google.protobuf.internal import builder as _builder\n",
        "from google.protobuf.internal import builder as _builder\n"
        f"from {PACKAGE} import _pool as _gateway_pool\n",
    )


def _proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def _run_protoc(workdir: Path) -> None:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={workdir}",
        f"--pyi_out={workdir}",
        f"--grpc_python_out={workdir}",
        *_proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _keep(path: Path) -> bool:
    # protoc writes an empty *_pb2_grpc.py for every file; keep only services.
    return not path.name.endswith("_pb2_grpc.py") or "class " in path.read_text()


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _run_protoc(work)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        (out / "__init__.py").write_text('"""Generated protobuf and gRPC stubs; see protos/regenerate.py."""\n')
        (out / "_pool.py").write_text(POOL_MODULE)
        for src in sorted(work.rglob("*")):
            if src.is_dir() or not _keep(src):
                continue
            dest = out / src.relative_to(work)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(_rewrite(src.read_text()))
        for folder in sorted(p for p in out.rglob("*") if p.is_dir()):
            (folder / "__init__.py").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    generate(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
