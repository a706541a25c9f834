"""TensorRT path: binding plans, calibration feeds and keys here; the engine build on Jetson."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla_learning.spec import PolicySpec
from vla_policy.backends.base import BackendError
from vla_policy.backends.tensorrt_backend import (
    IOTensor,
    TensorRTConfig,
    calibration_batches,
    engine_cache_key,
    onnx_io_tensors,
    plan_bindings,
)


def test_binding_plan_from_the_exported_graph(flow_export) -> None:
    spec = PolicySpec.load(flow_export)
    io = onnx_io_tensors(flow_export / 'model.onnx')
    assert [t.name for t in io if t.is_input] == list(spec.inputs)
    assert all(t.shape[0] == -1 for t in io)  # dynamic batch
    plan = plan_bindings(spec, io, batch=2)
    assert plan['images'] == (2, 2, 3, 32, 32)
    assert plan['noise'] == (2, 4, 6) and plan['actions'] == (2, 4, 6)


def test_binding_plan_rejects_a_mismatched_engine(flow_export, act_export) -> None:
    spec = PolicySpec.load(flow_export)
    with pytest.raises(BackendError, match='does not match'):
        plan_bindings(spec, onnx_io_tensors(act_export / 'model.onnx'))  # no noise input
    io = onnx_io_tensors(flow_export / 'model.onnx')
    io = [dataclasses.replace(t, shape=(-1, 5, 6)) if t.name == 'noise' else t for t in io]
    with pytest.raises(BackendError, match='noise'):
        plan_bindings(spec, io)
    io = [
        IOTensor(t.name, t.shape, 'float16', t.is_input)
        for t in onnx_io_tensors(flow_export / 'model.onnx')
    ]
    with pytest.raises(BackendError, match='float16'):
        plan_bindings(spec, io)


def test_calibration_batches(flow_export) -> None:
    spec = PolicySpec.load(flow_export)
    batches = list(calibration_batches(spec, flow_export / 'observations.npz', batch=3))
    assert len(batches) == 2  # 8 observations, full batches only
    assert set(batches[0]) == set(spec.inputs)
    assert (
        batches[0]['images'].shape == (3, 2, 3, 32, 32) and batches[0]['images'].dtype == np.float32
    )
    assert batches[0]['images'].min() >= 0.0 and batches[0]['images'].max() <= 1.0


def test_engine_key_follows_the_export(flow_export) -> None:
    spec = PolicySpec.load(flow_export)
    a = engine_cache_key(spec, 'fp16', '10.3.0', 'Orin')
    assert a.model_sha256 == spec.model_sha256 and a.calibration_sha256 == ''
    assert engine_cache_key(spec, 'fp16', '10.3.0', 'Orin', max_batch=2).digest() != a.digest()
    assert (
        engine_cache_key(spec, 'int8', '10.3.0', 'Orin', calibration_sha256='c' * 64).digest()
        != a.digest()
    )


@pytest.mark.tensorrt
@pytest.mark.parametrize('precision', ['fp16', 'int8'])
def test_tensorrt_engine_matches_onnxruntime(precision, flow_export, tmp_path) -> None:
    pytest.importorskip('tensorrt')
    torch = pytest.importorskip('torch')
    if not torch.cuda.is_available():
        pytest.skip('needs a CUDA GPU')
    from vla_policy.backends import make_backend
    from vla_policy.backends.base import Observation

    cfg = TensorRTConfig(precision=precision, cache_dir=str(tmp_path), max_batch=1, progress=False)
    trt_backend = make_backend('tensorrt', config=cfg)
    trt_backend.load(flow_export)
    _, _, built = trt_backend.prepare_engine(flow_export)
    assert not built  # the second preparation is a cache hit
    ort_backend = make_backend('onnxruntime')
    ort_backend.load(flow_export)
    rng = np.random.default_rng(0)
    obs = Observation(
        stamp=0.0,
        images=rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8),
        state=rng.standard_normal(6),
        lang_emb=rng.standard_normal(384),
        noise=rng.standard_normal((4, 6)),
    )
    a, b = trt_backend.infer(obs).targets, ort_backend.infer(obs).targets
    tol = 0.05 if precision == 'fp16' else 0.3
    assert np.max(np.abs(a - b)) < tol
