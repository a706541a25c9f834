"""PyTorch backend: runs the training checkpoint directly (reference, debugging, GPU w/o TRT)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vla_core.config import param
from vla_learning.spec import PolicySpec
from vla_policy.backends.base import BackendConfig, BackendError, InferenceBackend

__all__ = ['TorchBackend', 'TorchBackendConfig']


@dataclass(frozen=True, kw_only=True)
class TorchBackendConfig(BackendConfig):
    device: str = param('cpu', description='torch device, e.g. cpu or cuda:0')


class TorchBackend(InferenceBackend):
    """``load`` takes a checkpoint ``.pt`` (read with ``weights_only=True``)."""

    name: ClassVar[str] = 'torch'
    config: TorchBackendConfig

    @classmethod
    def default_config(cls) -> TorchBackendConfig:
        return TorchBackendConfig()

    def _load(self, artifact: Path) -> PolicySpec:
        import torch

        from vla_learning.export.onnx_export import onnx_inputs_of
        from vla_learning.training.checkpoint import load_policy

        torch.set_num_threads(self.config.num_threads)
        self._torch = torch
        self._device = torch.device(self.config.device)
        self._policy = load_policy(artifact, map_location=self._device)
        cfg = self._policy.config
        return PolicySpec.from_features(cfg.type, cfg.features, onnx_inputs_of(self._policy))

    @property
    def policy(self) -> Any:
        """The loaded :class:`vla_learning.policies.base.Policy` (an ``nn.Module``)."""
        if self._spec is None:
            raise BackendError('torch backend: load() first')
        return self._policy

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            # A copy (inputs are small): feeds may be read-only views, such as the cached
            # instruction embedding, which torch.from_numpy warns about.
            t = {k: torch.tensor(v, device=self._device) for k, v in feeds.items()}
            out = self._policy.predict_chunk(t['images'], t['state'], t['lang_emb'], t.get('noise'))
        return out.cpu().numpy()
