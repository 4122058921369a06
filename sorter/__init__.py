"""Real-time controller for recycling-sorting lines.

Importing this package is cheap: no torch, TensorRT or ONNX Runtime is loaded
until a backend that needs it is used.
"""

__version__ = "0.1.0"
