"""Export a policy's full inference path to ONNX.

The graph holds vision (both cameras), the trunk, normalization and, for flow policies, the
``num_steps`` Euler steps unrolled (static step count: TensorRT fuses an unrolled graph better
than an ONNX Loop). The language embedding is an input, computed once per instruction.
"""

from __future__ import annotations

from pathlib import Path
import warnings

import torch
from torch import nn

from vla_learning.policies.base import Policy
from vla_learning.spec import PolicySpec, sha256_file

__all__ = ['DEFAULT_OPSET', 'export_onnx', 'onnx_inputs_of']

DEFAULT_OPSET = 17  # LayerNormalization is native from 17; TensorRT 10 parses up to 20+


class _WithNoise(nn.Module):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self, images: torch.Tensor, state: torch.Tensor, lang_emb: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        return self.policy.predict_chunk(images, state, lang_emb, noise)


class _Deterministic(nn.Module):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(
        self, images: torch.Tensor, state: torch.Tensor, lang_emb: torch.Tensor
    ) -> torch.Tensor:
        return self.policy.predict_chunk(images, state, lang_emb)


def onnx_inputs_of(policy: Policy) -> tuple[str, ...]:
    base = ('images', 'state', 'lang_emb')
    return (*base, 'noise') if policy.uses_noise else base


def export_onnx(
    policy: Policy, path: str | Path, opset: int = DEFAULT_OPSET, check: bool = True
) -> PolicySpec:
    """Write ``path`` (batch dimension dynamic) and return its spec (with the file's sha256)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    policy = policy.eval().cpu()
    inputs = onnx_inputs_of(policy)
    spec = PolicySpec.from_features(policy.config.type, policy.config.features, inputs)
    shapes = spec.input_shapes(batch=1)
    args = tuple(torch.zeros(shapes[name]) for name in inputs)
    module = _WithNoise(policy) if policy.uses_noise else _Deterministic(policy)
    dynamic_axes = {name: {0: 'batch'} for name in (*inputs, spec.output)}
    with warnings.catch_warnings():
        # torch >= 2.9 calls the TorchScript exporter legacy; the dynamo one needs onnxscript.
        warnings.simplefilter('ignore')
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=[spec.output],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    if check:
        onnx.checker.check_model(str(path))
    return PolicySpec(
        **{**spec.__dict__, 'model_file': path.name, 'model_sha256': sha256_file(path)}
    )
