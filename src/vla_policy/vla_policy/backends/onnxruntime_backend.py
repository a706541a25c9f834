"""ONNX Runtime backend: the CPU default; CUDA / TensorRT execution providers when installed."""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from vla_core.config import param
from vla_learning.spec import PolicySpec
from vla_policy.backends.base import (
    BackendConfig,
    BackendError,
    InferenceBackend,
    resolve_export_dir,
    verify_model_hash,
)

__all__ = ['OnnxRuntimeBackend', 'OnnxRuntimeConfig']

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class OnnxRuntimeConfig(BackendConfig):
    providers: tuple[str, ...] = param(
        ('TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'),
        description='execution providers by preference; those not installed are skipped',
    )
    trt_fp16: bool = param(True, description='FP16 in the TensorRT execution provider')
    trt_cache_dir: str = param('', description='TensorRT EP engine cache dir (empty: no cache)')


class OnnxRuntimeBackend(InferenceBackend):
    name: ClassVar[str] = 'onnxruntime'
    config: OnnxRuntimeConfig

    @classmethod
    def default_config(cls) -> OnnxRuntimeConfig:
        return OnnxRuntimeConfig()

    def _load(self, artifact: Path) -> PolicySpec:
        import onnxruntime as ort

        _, spec, model = resolve_export_dir(artifact)
        verify_model_hash(model, spec)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = set(ort.get_available_providers())
        providers: list[str | tuple[str, dict[str, str]]] = []
        for name in self.config.providers:
            if name not in available:
                continue
            if name == 'TensorrtExecutionProvider':
                opts = {'trt_fp16_enable': str(self.config.trt_fp16)}
                if self.config.trt_cache_dir:
                    opts |= {
                        'trt_engine_cache_enable': 'True',
                        'trt_engine_cache_path': self.config.trt_cache_dir,
                    }
                providers.append((name, opts))
            else:
                providers.append(name)
        if not providers:
            raise BackendError(
                f'none of {self.config.providers} available; have {sorted(available)}'
            )
        self._session = ort.InferenceSession(str(model), options, providers=providers)
        names = tuple(i.name for i in self._session.get_inputs())
        if set(names) != set(spec.inputs):
            raise BackendError(f'model inputs {names} differ from spec {spec.inputs}')
        _log.info('onnxruntime: %s on %s', model, self._session.get_providers())
        return spec

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (actions,) = self._session.run([self.spec.output], feeds)
        return actions
