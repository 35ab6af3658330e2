"""Export a searched subnet: ONNX, torch.export (.pt2), safetensors + config, TensorRT engine, manifest."""

from hwnas.export.artifacts import FORMATS, ExportError
from hwnas.export.exporter import export
from hwnas.export.load import load_model

__all__ = ["FORMATS", "ExportError", "export", "load_model"]
