"""The perfect-perception diagnostic: an evaluation-only wrapper, not a deployment input."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vla_learning.data.synthetic import SyntheticConfig, make_synthetic_datasets
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.factory import make_policy
from vla_learning.training.checkpoint import save_checkpoint
from vla_policy.backends import make_backend
from vla_policy.backends.base import BackendError, Observation
from vla_sim.evaluation.true_scene import TrueSceneBackend, known_scene

TRUTH = np.array([0.45, 0.1, 0.35, -0.1], np.float32)  # block xy, target xy [m]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # two threads on two shared cores spin-wait each other


@pytest.fixture(scope='module')
def data():
    cfg = SyntheticConfig(num_train=8, num_val=2, image_size=32, horizon=4, language='hashed')
    return make_synthetic_datasets(cfg)[0]


def _policy(policy_type: str, data, localizer: bool = True):
    features = data.features.replace(env_state_dim=4) if localizer else data.features
    config = PolicyConfig(
        type=policy_type,
        features=features,
        vision={'backbone': 'tiny-cnn', 'pretrained': False, 'freeze': False},
        trunk={'d_model': 32, 'num_layers': 1, 'num_heads': 2, 'mlp_ratio': 2.0},
        flow={'expert_layers': 1, 'num_steps': 4},
        act={'latent_dim': 8, 'encoder_layers': 1, 'decoder_layers': 1},
        scene={'localizer': localizer, 'width': 4},
    )
    torch.manual_seed(0)
    return make_policy(config, data.norm_stats()).eval()


@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_a_known_scene_replaces_the_estimate_at_inference(policy_type, data) -> None:
    policy = _policy(policy_type, data)
    estimator = policy.localizer
    b = data.batch(torch.arange(4))
    noise = policy.sample_noise(4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        estimated = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
        with known_scene(policy, TRUTH):
            given = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
        assert policy.localizer is estimator  # its own localizer is back
        truth = torch.from_numpy(TRUTH).repeat(4, 1)
        policy.localizer.forward = lambda image, lang_n: truth  # a localizer that is always right
        perfect = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
    torch.testing.assert_close(given, perfect)
    assert not torch.allclose(given, estimated)
    plain = _policy(policy_type, data, localizer=False)
    with pytest.raises(BackendError, match='no scene localizer'), known_scene(plain, TRUTH):
        pass


def test_the_wrapper_needs_a_checkpoint_with_a_localizer_and_reads_the_task(
    data, tmp_path: Path
) -> None:
    """The exported graph has no scene input: an ONNX Runtime backend is refused, not ignored;
    with the torch backend each inference reads the episode's task."""
    with pytest.raises(BackendError, match='needs the torch backend'):
        TrueSceneBackend(make_backend('onnxruntime'))
    for localizer in (False, True):
        save_checkpoint(tmp_path / f'{localizer}.pt', _policy('act', data, localizer), step=0)
    plain = make_backend('torch')
    plain.load(tmp_path / 'False.pt')
    with pytest.raises(BackendError, match='no scene localizer'):
        TrueSceneBackend(plain)
    backend = make_backend('torch')
    spec = backend.load(tmp_path / 'True.pt')
    wrapped = TrueSceneBackend(backend)
    sample = data.batch(torch.arange(1))
    obs = Observation(
        stamp=3.0,
        images=sample.images[0].permute(0, 2, 3, 1).numpy(),
        state=sample.state[0].numpy(),
        lang_emb=sample.lang_emb[0].numpy(),
    )
    with pytest.raises(BackendError, match='reset_episode'):
        wrapped.infer(obs)
    wrapped.reset_episode(SimpleNamespace(scene_state=TRUTH.copy), seed=0)
    chunk = wrapped.infer(obs)
    assert wrapped.spec == spec and chunk.stamp == 3.0
    with known_scene(backend.policy, TRUTH):
        expected = backend.infer(obs).targets
    np.testing.assert_allclose(chunk.targets, expected, atol=1e-6)
    assert not np.allclose(chunk.targets, backend.infer(obs).targets, atol=1e-6)
