"""ONNX Runtime evaluation of the residual network, as a ``vla_core.control.ResidualFn``.

Usage in the node::

    residual = OnnxResidual(cfg.residual.model_path, dof=len(cfg.joint_names))
    controller = ResidualController(cfg, residual=residual)

One single-threaded CPU session: the network is tiny (tens of microseconds per call) and must not
fight the control thread for cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_core.control.residual import FEATURES_PER_JOINT

__all__ = ['OnnxResidual']


class OnnxResidual:
    """Callable ``features (6*DoF,) -> residual (DoF,)`` backed by an ONNX file."""

    def __init__(self, path: str | Path | bytes, dof: int) -> None:
        import onnxruntime as ort  # deferred: only nodes that use a residual need it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        model = path if isinstance(path, bytes) else str(path)
        self.session = ort.InferenceSession(model, opts, providers=['CPUExecutionProvider'])
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name = inp.name
        if inp.shape[-1] != FEATURES_PER_JOINT * dof or out.shape[-1] != dof:
            raise ValueError(
                f'residual model maps {inp.shape[-1]} -> {out.shape[-1]}, expected '
                f'{FEATURES_PER_JOINT * dof} -> {dof} for {dof} joints'
            )
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.dof = dof

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32).reshape(1, -1)
        return self.session.run(None, {self.input_name: x})[0].reshape(self.dof)
