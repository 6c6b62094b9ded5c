"""Export: a trained model as a self-describing ONNX file (optionally int8) or safetensors weights.

api.py (the `export` entry point), onnx.py (tracing + metadata), graph.py (what goes into the
graph per task), metadata.py (metadata_props), runtime.py (an .onnx file as a Predictor),
check.py (the parity gate), quantize.py (int8), weights.py (safetensors), timing.py (latency).
"""
