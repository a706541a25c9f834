"""Backends behind one interface: ONNX Runtime and PyTorch agree; artifacts are checked."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_learning.data.dataset import RecordedObservations
from vla_learning.language import HashedInstructionEncoder
from vla_policy.backends import make_backend
from vla_policy.backends.base import BackendError, Observation


def _observation(export_dir, i: int = 0, noise: bool = True) -> Observation:
    obs = RecordedObservations.load(export_dir / 'observations.npz')
    rng = np.random.default_rng(i)
    return Observation(
        stamp=12.5,
        images=obs.images[i].transpose(0, 2, 3, 1),  # (N, S, S, 3) as cameras deliver them
        state=obs.state[i],
        lang_emb=obs.lang_emb[i],
        noise=rng.standard_normal((4, 6)) if noise else None,
    )


def test_backends_import_on_demand() -> None:
    """The ONNX Runtime path imports neither torch nor the other backends."""
    code = (
        'import sys, vla_policy.backends as b; b.make_backend("onnxruntime"); '
        'bad = [m for m in ("torch", "tensorrt", "vla_policy.backends.torch_backend", '
        '"vla_policy.backends.tensorrt_backend") if m in sys.modules]; print(bad); assert not bad'
    )
    src = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(str(src / p) for p in ('vla_core', 'vla_learning', 'vla_policy'))
    subprocess.run([sys.executable, '-c', code], check=True, env={**os.environ, 'PYTHONPATH': path})
    with pytest.raises(ValueError, match='unknown backend'):
        make_backend('tflite')


@pytest.mark.parametrize('kind', ['flow', 'act'])
def test_onnxruntime_and_torch_backends_agree(kind, request) -> None:
    export_dir = request.getfixturevalue(f'{kind}_export')
    ort_backend = make_backend('onnxruntime')
    torch_backend = make_backend('torch')
    spec = ort_backend.load(export_dir)
    assert torch_backend.load(export_dir / 'policy.pt') == spec.__class__(
        **{**spec.__dict__, 'model_file': 'model.onnx', 'model_sha256': ''}
    )
    assert ort_backend.providers == ['CPUExecutionProvider']
    for backend in (ort_backend, torch_backend):
        assert backend.warm_up(1) > 0
    for i in range(3):
        obs = _observation(export_dir, i)
        a, b = ort_backend.infer(obs), torch_backend.infer(obs)
        assert isinstance(a, ActionChunk) and a.source == 'policy'
        assert a.stamp == 12.5 and a.dt == spec.dt and a.joint_names == spec.joint_names
        assert a.targets.shape == (spec.horizon, spec.action_dim)
        np.testing.assert_allclose(a.targets, b.targets, atol=1e-4)
    assert ort_backend.infer(obs).sequence == 4


def test_flow_noise_stream_is_seeded(flow_export) -> None:
    a, b = make_backend('onnxruntime'), make_backend('onnxruntime')
    a.load(flow_export)
    b.load(flow_export)
    obs = _observation(flow_export, noise=False)
    first = a.infer(obs).targets
    np.testing.assert_array_equal(first, b.infer(obs).targets)
    assert not np.array_equal(first, a.infer(obs).targets)  # fresh noise each call


def test_instruction_is_encoded_once(act_export) -> None:
    encoder = HashedInstructionEncoder()
    backend = make_backend('onnxruntime', instruction_encoder=encoder)
    backend.load(act_export)
    base = _observation(act_export)
    obs = Observation(stamp=1.0, images=base.images, state=base.state, instruction='pick it up')
    for _ in range(3):
        backend.infer(obs)
    assert encoder.misses == 1


def test_artifact_checks(flow_export, tmp_path) -> None:
    backend = make_backend('onnxruntime')
    with pytest.raises(BackendError, match='load'):
        backend.infer(_observation(flow_export))
    bad = tmp_path / 'bad'
    shutil.copytree(flow_export, bad)
    (bad / 'policy_spec.json').unlink()
    with pytest.raises(BackendError, match='policy_spec'):
        backend.load(bad)
    shutil.copy(flow_export / 'policy_spec.json', bad)
    with open(bad / 'model.onnx', 'ab') as f:
        f.write(b'\0')  # the model is no longer the one that passed parity
    with pytest.raises(BackendError, match='sha256'):
        backend.load(bad)
    backend.load(flow_export)
    obs = _observation(flow_export)
    wrong = Observation(stamp=0.0, images=obs.images[:1], state=obs.state, lang_emb=obs.lang_emb)
    with pytest.raises(BackendError, match='images'):
        backend.infer(wrong)
