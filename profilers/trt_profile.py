"""Measure a bundle of ONNX models with TensorRT on an NVIDIA GPU (no torch, no hwnas needed).

    python trt_profile.py BUNDLE_DIR [--device a100] [--save-engines]

Each model is parsed from its file, built into an engine (strongly typed, so the precision is the
ONNX file's own: `hwnas profile --precision fp16 --export-blocks` writes fp16 models), and timed
with CUDA events around `execute_async_v3` on one stream (GPU compute time; no host copies).
One timing cache is shared by all builds of the bundle. CUDA is reached through the CUDA runtime
library with ctypes, so TensorRT and numpy are the only packages needed. Writes
BUNDLE_DIR/measurements.csv and fingerprint.json; then `hwnas import-table BUNDLE_DIR --device LABEL`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

try:  # imported as hwnas.profilers.trt_profile
    from . import protocol as P
except ImportError:  # run as a script from the profilers folder
    import protocol as P  # type: ignore[no-redef]

BACKEND = "tensorrt"
TIMING_CACHE = "trt_timing.cache"
_H2D = 1  # cudaMemcpyHostToDevice


def _trt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise P.ProfilerError("tensorrt is not installed; pip install tensorrt (or use an NGC container)") from exc
    return tensorrt


class CudaRuntime:
    """The few CUDA runtime calls a timing loop needs, through ctypes."""

    def __init__(self) -> None:
        self.lib = self._load()

    @staticmethod
    def _load() -> ctypes.CDLL:
        names = [ctypes.util.find_library("cudart")]
        for site in sys.path:
            names += sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib", "libcudart.so*")), reverse=True)
        names += ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
        for name in filter(None, names):
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
        raise P.ProfilerError(
            "the CUDA runtime (libcudart) was not found; install the CUDA toolkit or nvidia-cuda-runtime"
        )

    def check(self, status: int, what: str) -> None:
        if status != 0:
            self.lib.cudaGetErrorString.restype = ctypes.c_char_p
            raise P.ProfilerError(f"CUDA {what} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMalloc")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        self.check(self.lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def upload(self, ptr: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        status = self.lib.cudaMemcpy(
            ctypes.c_void_p(ptr),
            array.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_size_t(array.nbytes),
            ctypes.c_int(_H2D),
        )
        self.check(status, "cudaMemcpy")

    def handle(self, create: str) -> int:
        h = ctypes.c_void_p()
        self.check(getattr(self.lib, create)(ctypes.byref(h)), create)
        return int(h.value or 0)

    def record(self, event: int, stream: int) -> None:
        self.check(self.lib.cudaEventRecord(ctypes.c_void_p(event), ctypes.c_void_p(stream)), "cudaEventRecord")

    def elapsed_ms(self, start: int, end: int) -> float:
        self.check(self.lib.cudaEventSynchronize(ctypes.c_void_p(end)), "cudaEventSynchronize")
        ms = ctypes.c_float()
        self.check(
            self.lib.cudaEventElapsedTime(ctypes.byref(ms), ctypes.c_void_p(start), ctypes.c_void_p(end)),
            "cudaEventElapsedTime",
        )
        return float(ms.value)


class EngineBuilder:
    """Builds engines from ONNX files with one shared timing cache (kept in the bundle folder)."""

    def __init__(self, folder: Path, workspace_mb: int = 1024, optimization_level: int = 3):
        trt = self.trt = _trt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.builder = trt.Builder(self.logger)
        self.runtime = trt.Runtime(self.logger)
        self.cache_path = folder / TIMING_CACHE
        self.workspace = workspace_mb << 20
        self.optimization_level = optimization_level
        self.cache: Any = None

    def build(self, path: Path) -> Any:
        trt = self.trt
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # TensorRT >= 9; always on in 11
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = self.builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise P.ProfilerError(f"TensorRT cannot parse {path.name}: {errors}")
        config = self.builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace)
        config.builder_optimization_level = self.optimization_level
        if self.cache is None:
            blob = self.cache_path.read_bytes() if self.cache_path.is_file() else b""
            self.cache = config.create_timing_cache(blob)
        config.set_timing_cache(self.cache, ignore_mismatch=False)
        plan = self.builder.build_serialized_network(network, config)
        if plan is None:
            raise P.ProfilerError(f"TensorRT could not build an engine for {path.name}; see the log above")
        P.atomic_write(self.cache_path, bytes(self.cache.serialize()))
        return plan


class EngineRunner:
    """A deserialised engine with device buffers; `__call__(i)` times one execution on input i."""

    def __init__(self, cuda: CudaRuntime, builder: EngineBuilder, plan: Any, inputs: list[np.ndarray]):
        trt = builder.trt
        self.cuda = cuda
        self.engine = builder.runtime.deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()
        self.buffers: list[int] = []
        self.input_ptrs: list[int] = []
        self.input_name = ""
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_name = name
                for array in inputs:
                    ptr = self._alloc(nbytes)
                    cuda.upload(ptr, array.astype(dtype).reshape(shape))
                    self.input_ptrs.append(ptr)
            else:
                self.context.set_tensor_address(name, self._alloc(nbytes))
        self.stream = cuda.handle("cudaStreamCreate")
        self.start, self.end = cuda.handle("cudaEventCreate"), cuda.handle("cudaEventCreate")

    def _alloc(self, nbytes: int) -> int:
        ptr = self.cuda.malloc(max(nbytes, 1))
        self.buffers.append(ptr)
        return ptr

    def __call__(self, i: int) -> float:
        self.context.set_tensor_address(self.input_name, self.input_ptrs[i % len(self.input_ptrs)])
        self.cuda.record(self.start, self.stream)
        if not self.context.execute_async_v3(self.stream):
            raise P.ProfilerError("TensorRT execution failed; see the log above")
        self.cuda.record(self.end, self.stream)
        return self.cuda.elapsed_ms(self.start, self.end)

    def close(self) -> None:
        self.context = self.engine = None  # release TensorRT's objects before the memory they point to
        for ptr in self.buffers:
            self.cuda.free(ptr)
        self.buffers.clear()


def gpu_model() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        return out.split(",")[0].strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fingerprint(device: str, protocol: P.Protocol) -> dict[str, Any]:
    trt = _trt()
    return {
        "device": device,
        "backend": BACKEND,
        "backend_version": trt.__version__,
        "tensorrt": trt.__version__,
        "gpu_model": gpu_model(),
        "threads": None,
        "protocol": protocol.to_dict(),
        **P.host_fingerprint(),
    }


def measure(
    folder: str | Path,
    device: str = "gpu",
    protocol: P.Protocol = P.Protocol(),  # noqa: B008  (frozen)
    save_engines: bool = False,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Build and time every model of the bundle (resuming); record the fingerprint beside the rows.
    `kwargs` go to `protocol.measure_entries` (progress, on_rows)."""
    folder = Path(folder)
    fp = fingerprint(device, protocol)
    cuda, builder = CudaRuntime(), EngineBuilder(folder)
    opened: list[EngineRunner] = []

    def load(path: Path, entry: P.Entry) -> P.Runner:
        plan = builder.build(path)
        if save_engines:
            path.with_suffix(".engine").write_bytes(bytes(plan))
        runner = EngineRunner(cuda, builder, plan, P.make_inputs(entry, protocol))
        opened.append(runner)
        return runner

    def release() -> None:
        while opened:
            opened.pop().close()

    rows = P.measure_bundle(folder, load, protocol, release=release, **kwargs)
    P.write_fingerprint(folder, fp)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = P.script_parser(__doc__, default_device="gpu")
    parser.add_argument("--save-engines", action="store_true", help="keep each built engine beside its ONNX file")
    args = parser.parse_args(argv)
    return P.run_script(
        "trt_profile",
        args,
        lambda protocol, progress: measure(args.bundle, args.device, protocol, args.save_engines, progress=progress),
    )


if __name__ == "__main__":
    sys.exit(main())
