"""optbench backends that run a cell's model in a deployment runtime (``onnxruntime``)."""
