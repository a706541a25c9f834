"""Config loading, resume reproducibility, safe checkpoint loading, the CLIs end to end."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from learning_test_utils import TINY_YAML
from vla_core.config import ConfigError
from vla_learning.training.checkpoint import load_checkpoint
from vla_learning.training.configuration_train import load_experiment
from vla_learning.training.trainer import Trainer


def _trainer(out, data, **overrides) -> Trainer:
    cfg = load_experiment(
        TINY_YAML, {'train.output_dir': str(out), 'train.num_threads': 1, **overrides}
    )
    return Trainer(cfg, datasets=data)


def test_yaml_overrides_and_validation(tmp_path) -> None:
    cfg = load_experiment(TINY_YAML, {'train.steps': 3, 'policy.type': 'act'})
    assert cfg.train.steps == 3 and cfg.policy.type == 'act'
    with pytest.raises(ConfigError, match=r'trunk\.num_heads'):
        load_experiment(TINY_YAML, {'policy.trunk.num_heads': 3})
    with pytest.raises(ConfigError, match='unknown'):
        load_experiment(TINY_YAML, {'train.stepz': 3})


@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_resume_reproduces_the_loss_trajectory(policy_type, tiny_data, tmp_path) -> None:
    over = {'policy.type': policy_type, 'train.steps': 6, 'train.checkpoint_every': 3}
    straight = _trainer(tmp_path / 'a', tiny_data, **over).fit()
    first = _trainer(tmp_path / 'b', tiny_data, **{**over, 'train.steps': 6})
    while first.step < 3:
        first.train_step()
    first.save(tmp_path / 'b' / 'mid.pt')
    resumed = _trainer(tmp_path / 'c', tiny_data, **over)
    resumed.fit(resume=tmp_path / 'b' / 'mid.pt')
    assert len(straight['train_loss']) == 6
    assert resumed.history['train_loss'] == pytest.approx(straight['train_loss'], rel=1e-6, abs=0)
    assert resumed.history['train_loss'][:3] == first.history['train_loss']


def test_checkpoints_load_weights_only(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))

    path = tmp_path / 'evil.pt'
    torch.save({'format': 'vla_learning.checkpoint/1', 'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    torch.save({'format': 'something else'}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='not a'):
        load_checkpoint(tmp_path / 'other.pt')


def test_train_and_export_clis(tmp_path) -> None:
    from vla_learning.export.__main__ import main as export_main
    from vla_learning.train import main as train_main

    run = tmp_path / 'run'
    assert train_main(['--config', str(TINY_YAML), '--set', f'train.output_dir={run}']) == 0
    for name in ('last.pt', 'loss_curve.png', 'history.json', 'observations.npz', 'config.json'):
        assert (run / name).is_file(), name
    history = json.loads((run / 'history.json').read_text())
    assert history['val_step'] == [0, 3, 6]
    # Resume from last.pt with more steps continues where it stopped.
    assert train_main(
        ['--config', str(TINY_YAML), '--set', f'train.output_dir={run}', '--set', 'train.steps=7',
         '--resume', 'auto']
    ) == 0  # fmt: skip
    assert load_checkpoint(run / 'last.pt')['step'] == 7
    out = tmp_path / 'export'
    assert export_main(['--checkpoint', str(run / 'last.pt'), '--output', str(out)]) == 0
    for name in ('model.onnx', 'policy_spec.json', 'parity.json', 'observations.npz'):
        assert (out / name).is_file(), name
    assert json.loads((out / 'parity.json').read_text())['passed'] is True
