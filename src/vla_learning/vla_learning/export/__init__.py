"""ONNX export of the full inference path and the ONNX-vs-PyTorch parity gate."""
