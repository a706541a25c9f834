"""Learning side of the VLA suite: policies, training, export. Pure torch, never rclpy.

Heavy modules (torch, sentence-transformers, onnx) are imported by the submodules that need them,
so ``import vla_learning`` and ``vla_learning.spec`` stay cheap for the inference side.
"""

__version__ = '0.1.0'
