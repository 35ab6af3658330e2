"""Export a searched subnet: ONNX, torch.export (.pt2), safetensors + config, TensorRT engine, manifest."""

from hwnas.deploy.artifacts import FORMATS, ExportError
from hwnas.deploy.exporter import export
from hwnas.deploy.load import load_model

__all__ = ["FORMATS", "ExportError", "export", "load_model"]
