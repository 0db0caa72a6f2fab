"""What run.py and check.py share: the bundle's manifest and golden data, and one runner per backend.

Written by `ofb-deploy bundle`; needs numpy plus `tensorrt` (or `tensorrt_rtx`) or `onnxruntime`, never ofb-deploy.
TensorRT engines run through the name-based API of TensorRT 8.5+ (`num_io_tensors`, `set_input_shape`,
`set_tensor_address`, `execute_async_v3`), with device memory, copies, a stream and CUDA events from the CUDA
runtime library through ctypes (`libcudart`, present wherever TensorRT is), so no pycuda or torch is needed.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorrt", "ort-cpu", "ort-cuda")


class BundleError(Exception):
    """Anything wrong with the bundle, its files or this machine; reported as one line."""


def run_main(main: Any) -> None:
    """Run ``main()`` and exit with its code; a ``BundleError`` (or any failure) becomes one line on stderr."""
    try:
        code = main()
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:  # the last resort: still one line, with what failed
        print(f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)  # fmt: skip
        code = 1
    sys.exit(code)


def load_manifest(root: Path = HERE) -> dict[str, Any]:
    path = root / "manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or "layout" not in doc or "files" not in doc:
        raise BundleError(f"{path} is not a bundle manifest (no layout/files)")
    return doc


def bundle_path(manifest: dict[str, Any], key: str, root: Path = HERE) -> Path:
    return root / manifest["layout"][key]


def verify(manifest: dict[str, Any], paths: list[Path], root: Path = HERE) -> None:
    """Each file's sha256 must be the manifest's (a corrupt or replaced file is refused before it is used)."""
    for path in paths:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        want = manifest["files"].get(rel, {}).get("sha256")
        if want is None:
            continue
        if not path.is_file():
            raise BundleError(f"{rel} is missing from the bundle")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != want:
            raise BundleError(f"{rel} does not match manifest.json (sha256 {digest[:12]} != {want[:12]}): corrupt or "
                              "replaced file; copy the bundle again, or pass --no-verify")  # fmt: skip


def _load_npy(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npz":  # one compressed array (the golden images)
            with np.load(path, allow_pickle=False) as archive:
                return archive["array"]
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"cannot read {path.name}: {exc}") from exc


def load_golden(manifest: dict[str, Any], root: Path = HERE) -> dict[str, Any]:
    """Golden inputs (decoded to the model's float32 input), labels, reference logits and golden.json, checked."""
    meta_path = bundle_path(manifest, "golden_meta", root)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {meta_path.name}: {exc}") from exc
    raw = _load_npy(bundle_path(manifest, "golden_inputs", root))
    labels = _load_npy(bundle_path(manifest, "golden_labels", root))
    reference = _load_npy(bundle_path(manifest, "golden_reference", root))
    shape, classes = tuple(meta["input_shape"]), int(meta["num_classes"])
    n = len(raw)
    if raw.ndim != 4 or tuple(raw.shape[1:]) != shape or str(raw.dtype) != meta["encoding"]:
        raise BundleError(f"golden inputs are {raw.dtype}{list(raw.shape)}, golden.json says {meta['encoding']} "
                          f"[N, {', '.join(str(d) for d in shape)}]: a wrong golden file")  # fmt: skip
    if labels.shape != (n,) or reference.shape != (n, classes):
        raise BundleError(f"golden labels {list(labels.shape)} / reference {list(reference.shape)} do not fit "
                          f"{n} inputs of {classes} classes: a wrong golden file")  # fmt: skip
    if labels.min() < 0 or labels.max() >= classes:
        raise BundleError(f"golden labels outside 0..{classes - 1}: a wrong golden file")
    images = raw.astype(np.float32)
    if meta["encoding"] == "uint8":
        mean = np.asarray(meta["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(meta["std"], np.float32).reshape(1, -1, 1, 1)
        images = (images / np.float32(255.0) - mean) / std
    return {"images": np.ascontiguousarray(images), "labels": labels.astype(np.int64), "reference": reference,
            "meta": meta}  # fmt: skip


# -- ONNX Runtime ------------------------------------------------------------------------------------------------
class OrtRunner:
    """An ONNX Runtime session on the CPU or CUDA execution provider."""

    def __init__(self, onnx_path: Path, backend: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BundleError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)") from exc
        provider = "CUDAExecutionProvider" if backend == "ort-cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise BundleError(f"onnxruntime {ort.__version__} here has no {provider} "
                              "(pip install onnxruntime-gpu; on Jetson, NVIDIA's wheel for the JetPack)")  # fmt: skip
        try:
            self.session = ort.InferenceSession(str(onnx_path), providers=[provider])
        except Exception as exc:  # a corrupt or foreign file: InvalidProtobuf, Fail, NotImplemented ...
            raise BundleError(f"onnxruntime cannot load {onnx_path.name}: {str(exc).strip().splitlines()[0]}") from exc
        self.input = self.session.get_inputs()[0].name
        self.description = f"onnxruntime {ort.__version__} {provider}"
        self.min_batch, self.max_batch = 1, 1 << 30

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: batch})[0], dtype=np.float32)

    def time_once(self, batch: np.ndarray) -> float:
        import time

        start = time.perf_counter()
        self.session.run(None, {self.input: batch})
        return (time.perf_counter() - start) * 1e3


# -- TensorRT through the CUDA runtime (ctypes) ----------------------------------------------------------------
class Cuda:
    """The few CUDA runtime calls a TensorRT run needs."""

    H2D, D2H = 1, 2

    def __init__(self) -> None:
        for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"):
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise BundleError("the CUDA runtime (libcudart.so) is not on the library path: is this a CUDA machine?")
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise BundleError(f"CUDA {what} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        status = self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), kind)
        self.check(status, "cudaMemcpy")

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        return int(handle.value or 0)

    def synchronize(self, stream: int) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def event(self) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaEventCreate(ctypes.byref(handle)), "cudaEventCreate")
        return handle

    def record(self, event: ctypes.c_void_p, stream: int) -> None:
        self.check(self.lib.cudaEventRecord(event, ctypes.c_void_p(stream)), "cudaEventRecord")

    def elapsed_ms(self, start: ctypes.c_void_p, end: ctypes.c_void_p) -> float:
        self.check(self.lib.cudaEventSynchronize(end), "cudaEventSynchronize")
        ms = ctypes.c_float()
        self.check(self.lib.cudaEventElapsedTime(ctypes.byref(ms), start, end), "cudaEventElapsedTime")
        return float(ms.value)


class TrtRunner:
    """A serialized engine of ``tensorrt`` or ``tensorrt_rtx`` (needs the GPU it was built for)."""

    def __init__(self, engine_path: Path, library: str) -> None:
        try:
            self.trt = trt = importlib.import_module(library)
        except Exception as exc:  # ImportError, or OSError for a missing libnvinfer
            raise BundleError(
                f"cannot import {library} ({type(exc).__name__}): install TensorRT for this device"
            ) from exc
        if not engine_path.is_file():
            raise BundleError(f"no engine at {engine_path}: run `bash build.sh` first")
        self.cuda = Cuda()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise BundleError(f"{library} {trt.__version__} cannot load {engine_path.name}: built with another "
                              "TensorRT version or GPU? run `bash build.sh` again")  # fmt: skip
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == mode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == mode.OUTPUT)
        low, _opt, high = self.engine.get_tensor_profile_shape(self.input, 0)
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self.stream = self.cuda.stream()
        self.buffers: dict[str, tuple[int, int]] = {}
        self.description = f"{library} {trt.__version__}"

    def _dtype(self, name: str) -> np.dtype:
        kind = self.engine.get_tensor_dtype(name)
        if hasattr(self.trt, "nptype"):
            return np.dtype(self.trt.nptype(kind))
        return np.dtype({"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64"}[kind.name])

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self.cuda.free(ptr)
            ptr, size = self.cuda.malloc(nbytes), nbytes
            self.buffers[name] = (ptr, size)
        return ptr

    def bind(self, batch: np.ndarray) -> np.ndarray:
        """Copy ``batch`` in, set shapes and addresses; the host array the output lands in."""
        host_in = np.ascontiguousarray(batch, dtype=self._dtype(self.input))
        if not self.context.set_input_shape(self.input, tuple(host_in.shape)):
            raise BundleError(
                f"the engine refuses input shape {list(host_in.shape)} (its max batch is {self.max_batch})"
            )
        dev_in = self._buffer(self.input, host_in.nbytes)
        self.cuda.copy(dev_in, host_in.ctypes.data, host_in.nbytes, Cuda.H2D)
        host_out = np.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=self._dtype(self.output))
        dev_out = self._buffer(self.output, host_out.nbytes)
        if not (
            self.context.set_tensor_address(self.input, dev_in)
            and self.context.set_tensor_address(self.output, dev_out)
        ):
            raise BundleError("TensorRT refused a tensor address")
        return host_out

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise BundleError("TensorRT execute_async_v3 failed")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        host_out = self.bind(batch)
        self.execute()
        self.cuda.synchronize(self.stream)
        self.cuda.copy(host_out.ctypes.data, self.buffers[self.output][0], host_out.nbytes, Cuda.D2H)
        return host_out.astype(np.float32)

    def time_once(self, batch: np.ndarray) -> float:
        """GPU time of one run in ms (CUDA events; no host-device copies inside)."""
        start, end = self.cuda.event(), self.cuda.event()
        self.cuda.record(start, self.stream)
        self.execute()
        self.cuda.record(end, self.stream)
        return self.cuda.elapsed_ms(start, end)


def make_runner(backend: str, manifest: dict[str, Any], onnx: Path, engine: Path) -> Any:
    """A runner for ``backend``: the engine for ``tensorrt``, the ONNX for ``ort-*``."""
    if backend == "tensorrt":
        return TrtRunner(engine, manifest["target"]["library"])
    if backend in ("ort-cpu", "ort-cuda"):
        return OrtRunner(onnx, backend)
    raise BundleError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def run_all(runner: Any, images: np.ndarray) -> np.ndarray:
    """Outputs for every image, in batches the runner takes (a last batch below the profile's min is padded)."""
    step = max(1, min(runner.max_batch, 256))
    outputs = []
    for i in range(0, len(images), step):
        batch = images[i : i + step]
        short = runner.min_batch - len(batch)
        if short > 0:
            batch = np.concatenate([batch, np.repeat(batch[-1:], short, axis=0)])
        outputs.append(runner.infer(batch)[: len(images[i : i + step])])
    return np.concatenate(outputs)


def engine_mode(engine: Path, default: str) -> str:
    """The build mode recorded in the engine's sidecar (``fp16``, ``int8``, ``int8-implicit``), else ``default``."""
    sidecar = engine.with_name(engine.name + ".json")
    try:
        return str(json.loads(sidecar.read_text(encoding="utf-8")).get("mode", default))
    except (OSError, ValueError):
        return default
