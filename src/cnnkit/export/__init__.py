"""Export: a trained model as a self-describing ONNX file (optionally int8) or safetensors weights.

api.py (the `export` entry point), onnx.py (tracing + metadata), graph.py (what goes into the
graph per task), metadata.py (metadata_props), check.py (the parity gate), quantize.py (int8),
weights.py (safetensors), timing.py (latency). Reading the files back (predict, eval, explain,
serve) is `engine/exported.py`'s: the engine must not depend on this package, which builds on it.
"""
