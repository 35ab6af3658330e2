"""Target devices: what a `--device` label means, which backend measures it, and whether this
machine is that device.

A label is the user's name for a target. `cpu` (or `cpu-<name>`, e.g. `cpu-graviton3`) is measured
with ONNX Runtime; a known GPU label (`a100`, `h100`, `jetson-orin`, ...) or `gpu-<name>` with
TensorRT when it is installed, else with torch on CUDA. Measuring a GPU label here requires this
machine's GPU to be that GPU, so a table is never silently built on the wrong card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwnas.errors import HwnasError

ONNXRUNTIME, TORCH, TENSORRT = "onnxruntime", "torch", "tensorrt"
BACKENDS = (ONNXRUNTIME, TORCH, TENSORRT)
PRECISIONS = ("fp32", "fp16")

# Known GPU labels and the word that names that GPU in `torch.cuda.get_device_name()`.
GPU_LABELS: dict[str, str] = {
    "a100": "A100",
    "h100": "H100",
    "h200": "H200",
    "b200": "B200",
    "v100": "V100",
    "a10": "A10",
    "a10g": "A10G",
    "l4": "L4",
    "l40s": "L40S",
    "t4": "T4",
    "rtx3090": "3090",
    "rtx4090": "4090",
    "rtx5090": "5090",
    "jetson-orin": "Orin",
    "jetson-xavier": "Xavier",
}
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class DeviceError(HwnasError):
    """A device label that is unknown or does not match this machine."""


@dataclass(frozen=True)
class Device:
    label: str
    is_gpu: bool
    gpu_name: str | None = None  # the word a matching GPU's name contains; None: any GPU

    @property
    def backends(self) -> tuple[str, ...]:
        return (TENSORRT, TORCH) if self.is_gpu else (ONNXRUNTIME,)


def parse_device(label: str) -> Device:
    """The device a label names, or a one-line error listing the labels we understand."""
    name = label.strip().lower()
    if name == "cpu" or (name.startswith("cpu-") and _LABEL.match(name)):
        return Device(name, is_gpu=False)
    if name in GPU_LABELS:
        return Device(name, is_gpu=True, gpu_name=GPU_LABELS[name])
    if name.startswith("gpu-") and _LABEL.match(name):
        return Device(name, is_gpu=True)
    raise DeviceError(
        f"unknown device label {label!r}; use cpu, cpu-<name>, gpu-<name>, or one of {', '.join(GPU_LABELS)}"
    )


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(device: Device, backend: str | None, precision: str) -> str:
    """The backend that measures `device` (the default when `backend` is None), checked."""
    if backend is None:
        backend = (TENSORRT if tensorrt_available() else TORCH) if device.is_gpu else ONNXRUNTIME
    if backend not in device.backends:
        kind = "a GPU" if device.is_gpu else "a CPU"
        raise DeviceError(
            f"backend {backend} does not measure {kind} label like {device.label!r}; "
            f"use --backend {' or '.join(device.backends)}"
        )
    if backend == ONNXRUNTIME and precision != "fp32":
        raise DeviceError("onnxruntime CPU tables are fp32 only; use --precision fp32 (fp16 needs a GPU backend)")
    return backend


def local_gpu_problem(device: Device) -> str | None:
    """Why this machine's GPU is not the GPU `device` names, as a clause (None when it is)."""
    import torch

    if not torch.cuda.is_available():
        return "this machine has no CUDA GPU"
    name = torch.cuda.get_device_name(0)
    if device.gpu_name and not re.search(rf"\b{re.escape(device.gpu_name)}\b", name, re.IGNORECASE):
        return f"this machine's GPU is {name!r}, not an {device.gpu_name}"
    return None


def check_local_gpu(device: Device) -> str:
    """This machine's GPU name, if it is the GPU `device` names; otherwise a clear refusal."""
    import torch

    problem = local_gpu_problem(device)
    if problem:
        raise DeviceError(
            f"device {device.label!r} is a GPU but {problem}; profile on the target itself, or write a "
            f"bundle with `hwnas profile --device {device.label} --export-blocks DIR` and measure it "
            f"there with profilers/trt_profile.py"
        )
    return torch.cuda.get_device_name(0)
