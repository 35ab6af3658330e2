"""Device-side profilers: copy this folder to a target that has onnxruntime or tensorrt (and numpy),
then `python ort_profile.py BUNDLE` or `python trt_profile.py BUNDLE`. No torch, no hwnas needed.
Inside hwnas the same code is importable as `hwnas.profilers`."""
