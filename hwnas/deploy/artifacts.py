"""One writer and one check per artifact format. Every writer gets a static (extracted) model, so no
artifact holds sliced supernet weights; every check loads the file back and compares it with
PyTorch on fresh random inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from hwnas.errors import HwnasError
from hwnas.families.registry import timm_kwargs
from hwnas.latency.bundle import OPSET, export_onnx
from hwnas.spaces import Arch, spec_dict

FORMATS = ("onnx", "pt2", "safetensors", "tensorrt")
DEFAULT_OPSET = OPSET
FILES = {"onnx": "model.onnx", "pt2": "model.pt2", "safetensors": "model.safetensors", "tensorrt": "model.engine"}
CONFIG = "config.json"
TIMM_MODEL = "vit_base_patch16_224"  # any timm ViT name: the kwargs override its whole shape
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # max abs difference from PyTorch fp32
# TensorRT runs fp32 matrix products in TF32 by default on Ampere and later (10 mantissa bits), and
# picks fused fp16 kernels of its own: its tolerance is wider (not yet run on a GPU with TensorRT)
TENSORRT_TOLERANCE = {"fp32": 1e-2, "fp16": 5e-2}


class ExportError(HwnasError):
    """An export that cannot be done here, or an artifact that does not match PyTorch."""


def fresh_inputs(arch: Arch, batch_size: int, n: int = 3, seed: int = 1234) -> list[torch.Tensor]:
    s = arch.space.spec
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, s.in_chans, s.img_size, s.img_size, generator=g) for _ in range(n)]


def _max_diff(expected: torch.Tensor, got: Any) -> float:
    return float(np.abs(expected.float().numpy() - np.asarray(got, dtype=np.float32)).max())


def _check(name: str, diff: float, tolerance: float) -> dict[str, float]:
    if not diff <= tolerance:
        raise ExportError(
            f"{name} differs from PyTorch by {diff:.2e} (tolerance {tolerance:.0e}); rerun with --debug and report it"
        )
    return {"max_abs_diff": diff, "tolerance": tolerance}


# ---- ONNX --------------------------------------------------------------------------------------------
def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    export_onnx(model, example, path, opset)  # dynamo, one file, metadata (local paths) stripped, onnx.checker


def check_onnx(path: Path, model: nn.Module, inputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    stored = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    dtype = np.float16 if precision == "fp16" else np.float32
    with torch.no_grad():
        diff = max(_max_diff(model.float()(x), session.run(None, {name: x.numpy().astype(dtype)})[0]) for x in inputs)
    paths = [p.value for p in proto.metadata_props] + [p.value for n in proto.graph.node for p in n.metadata_props]
    return {
        **_check("model.onnx (ONNX Runtime)", diff, TOLERANCE[precision]),
        "opset": proto.opset_import[0].version,
        "stored_weights": stored,
        "metadata_entries": len(paths),
    }


# ---- torch.export -------------------------------------------------------------------------------------
def write_pt2(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        program = torch.export.export(model, (example,))
    torch.export.save(program, str(path))


def check_pt2(path: Path, model: nn.Module, inputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    loaded = torch.export.load(str(path)).module()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    with torch.no_grad():
        diff = max(_max_diff(model.float()(x), loaded(x.to(dtype)).float()) for x in inputs)
    return _check("model.pt2 (torch.export)", diff, TOLERANCE[precision])


# ---- safetensors + config -------------------------------------------------------------------------------
def model_config(arch: Arch) -> dict[str, Any]:
    """What rebuilds the model without the supernet: the arch (for `hwnas.load_model`) and, for a
    plain ViT/DeiT arch, the `timm.create_model` call."""
    kwargs = timm_kwargs(arch)
    return {
        "arch": arch.to_dict(),
        "space": spec_dict(arch.space),
        "timm": None if kwargs is None else {"model_name": TIMM_MODEL, "kwargs": kwargs},
    }


def write_safetensors(model: nn.Module, arch: Arch, path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"space": arch.space.key, "digest": arch.digest})
    (path.parent / CONFIG).write_text(json.dumps(model_config(arch), indent=2) + "\n")


def check_safetensors(path: Path, model: nn.Module, inputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    from hwnas.deploy.load import load_model

    rebuilt = load_model(path.parent).float()
    with torch.no_grad():
        diff = max(_max_diff(model.float()(x), rebuilt(x)) for x in inputs)
    return _check("model.safetensors (hwnas.load_model)", diff, TOLERANCE[precision])


# ---- TensorRT -------------------------------------------------------------------------------------------
def tensorrt_unavailable() -> str | None:
    """Why a TensorRT engine cannot be built here, or None."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "tensorrt is not installed (pip install tensorrt, or use an NGC container)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def write_tensorrt(onnx_path: Path, path: Path) -> None:
    """Build from the exported ONNX. The network is strongly typed (TensorRT 10 flag, always on in
    11, which removed BuilderFlag.FP16), so fp16 comes from the fp16 ONNX itself."""
    from hwnas.profilers.trt_profile import EngineBuilder

    plan = EngineBuilder(path.parent).build(onnx_path)
    path.write_bytes(bytes(plan))
    (path.parent / "trt_timing.cache").unlink(missing_ok=True)


def check_tensorrt(path: Path, model: nn.Module, inputs: list[torch.Tensor], precision: str) -> dict[str, Any]:
    """Load the engine, run it on the inputs PyTorch gets (device buffers are torch CUDA tensors)
    and compare its output with PyTorch fp32."""
    import tensorrt as trt

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise ExportError(f"TensorRT cannot load the engine it built ({path.name})")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    (source,) = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    (target,) = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    context = engine.create_execution_context()
    stream = torch.cuda.current_stream()  # ordered after the copies that fill the input
    dtypes = {trt.DataType.HALF: torch.float16, trt.DataType.FLOAT: torch.float32}
    in_dtype, out_dtype = (dtypes[engine.get_tensor_dtype(n)] for n in (source, target))
    diffs = []
    for x in inputs:
        given = x.to("cuda", in_dtype).contiguous()
        got = torch.empty(tuple(engine.get_tensor_shape(target)), dtype=out_dtype, device="cuda")
        context.set_tensor_address(source, given.data_ptr())
        context.set_tensor_address(target, got.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExportError(f"TensorRT failed to run the engine it built ({path.name}); rerun with --debug")
        stream.synchronize()
        with torch.no_grad():
            diffs.append(_max_diff(model.float()(x), got.float().cpu()))
    return {
        **_check("model.engine (TensorRT)", max(diffs), TENSORRT_TOLERANCE[precision]),
        "tensorrt": trt.__version__,
        "io_tensors": engine.num_io_tensors,
    }
