"""The `torch` backend: time PyTorch modules on a CUDA GPU with CUDA events, eagerly or by
replaying a captured CUDA graph (which removes the launch overhead that dominates batch-1 blocks;
say which one a table used, since the two can differ several-fold)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from hwnas.latency.bundle import Plan
from hwnas.profilers.protocol import Entry, Protocol, Runner, host_fingerprint, make_inputs


def loader(plans: Mapping[str, Plan], protocol: Protocol, cuda_graphs: bool) -> Callable[[Path, Entry], Runner]:
    """A loader for `measure_entries`: builds the planned module on the GPU and returns its timer."""

    def load(_path: Path, entry: Entry) -> Runner:
        module = plans[entry.file].build().cuda()
        inputs = [torch.from_numpy(a).cuda() for a in make_inputs(entry, protocol)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if cuda_graphs:
            return _graph_runner(module, inputs, start, end)

        @torch.inference_mode()
        def run(i: int) -> float:
            x = inputs[i % len(inputs)]
            start.record()
            module(x)
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        return run

    return load


def _graph_runner(module: torch.nn.Module, inputs: list[torch.Tensor], start: Any, end: Any) -> Runner:
    static = inputs[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(side):
        for _ in range(3):  # warm up kernels and the allocator before capture
            module(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        module(static)

    def run(i: int) -> float:
        static.copy_(inputs[i % len(inputs)])  # outside the timed region
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return run


def release() -> None:
    torch.cuda.empty_cache()


def fingerprint(device: str, cuda_graphs: bool, protocol: Protocol) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    return {
        "device": device,
        "backend": "torch",
        "backend_version": torch.__version__,
        "gpu_model": props.name,
        "gpu_memory_gb": round(props.total_memory / 2**30, 1),
        "gpu_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cuda_graphs": cuda_graphs,
        "threads": None,
        "protocol": protocol.to_dict(),
        **host_fingerprint(),
    }
