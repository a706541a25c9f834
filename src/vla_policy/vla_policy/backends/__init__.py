"""Inference backends behind one interface; each module is imported only when asked for.

backend = make_backend('onnxruntime')          # or 'torch', 'tensorrt'
backend.load('exports/flow')                   # export dir (torch: a checkpoint .pt)
backend.warm_up()
chunk = backend.infer(observation)             # -> vla_core.chunk.ActionChunk
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vla_policy.backends.base import BackendConfig, InferenceBackend

__all__ = ['BACKENDS', 'backend_config', 'make_backend']

BACKENDS: dict[str, tuple[str, str]] = {
    'onnxruntime': ('vla_policy.backends.onnxruntime_backend', 'OnnxRuntimeBackend'),
    'torch': ('vla_policy.backends.torch_backend', 'TorchBackend'),
    'tensorrt': ('vla_policy.backends.tensorrt_backend', 'TensorRTBackend'),
}


def _backend_class(kind: str) -> type[InferenceBackend]:
    try:
        module, name = BACKENDS[kind]
    except KeyError:
        raise ValueError(f'unknown backend {kind!r}; known: {sorted(BACKENDS)}') from None
    return getattr(importlib.import_module(module), name)


def make_backend(kind: str, **kwargs: Any) -> InferenceBackend:
    """Instantiate backend ``kind`` (its heavy imports happen here, not before)."""
    return _backend_class(kind)(**kwargs)


def backend_config(kind: str, **fields: Any) -> BackendConfig:
    """Backend ``kind``'s own config class, at its defaults except the (shared) ``fields``."""
    return _backend_class(kind).default_config().replace(**fields)
