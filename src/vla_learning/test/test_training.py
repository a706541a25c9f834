"""Config loading, resume reproducibility, safe checkpoint loading, localizer pretraining, the
CLIs end to end."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
import torch

from learning_test_utils import TINY_YAML, coloured_scene_data
from vla_core.cli import InputError
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


@pytest.mark.parametrize('path', sorted(TINY_YAML.parent.glob('*.yaml')), ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path) -> None:
    """A typo in a shipped YAML fails here, not minutes into someone's run."""
    cfg = load_experiment(path)
    if path.name.startswith('sim_'):  # the sim's demonstrations record the scene state
        assert cfg.data.source == 'recorded' and cfg.policy.scene.localizer
    if cfg.policy.scene.localizer:  # trained jointly with the policy it stayed at 4.4 cm
        assert cfg.policy.scene.pretrain_steps >= 1000


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


def test_weight_average_is_what_validates_checkpoints_and_resumes(tiny_data, tmp_path) -> None:
    decay = 0.9
    over = {'optim.ema_decay': decay, 'train.steps': 6, 'train.checkpoint_every': 3}
    trainer = _trainer(tmp_path / 'a', tiny_data, **over)
    assert trainer.deployed is trainer.policy  # nothing averaged yet
    name, _ = next((n, p) for n, p in trainer.policy.named_parameters() if p.requires_grad)
    live = []
    for _ in range(3):
        trainer.train_step()
        live.append(dict(trainer.policy.named_parameters())[name].detach().clone())
    expected = live[0]  # the average starts as a copy of the first step's weights
    for weights in live[1:]:
        expected = decay * expected + (1 - decay) * weights
    averaged = dict(trainer.deployed.named_parameters())[name]
    assert torch.allclose(averaged, expected, atol=1e-6)
    assert not torch.allclose(averaged, live[-1])
    trainer.save(tmp_path / 'a' / 'mid.pt')
    ckpt = load_checkpoint(tmp_path / 'a' / 'mid.pt')
    assert torch.equal(ckpt['model'][name], averaged.detach())  # what export reads
    assert torch.equal(ckpt['live_model'][name], live[-1]) and ckpt['ema_updates'] == 3
    before = trainer.validate()['val_action_mse']
    trainer.ema = None  # the live weights validate differently: validation saw the average
    assert trainer.validate()['val_action_mse'] != before

    straight = _trainer(tmp_path / 'b', tiny_data, **over)
    straight.fit()
    resumed = _trainer(tmp_path / 'c', tiny_data, **over)
    resumed.fit(resume=tmp_path / 'a' / 'mid.pt')
    for (key, a), b in zip(
        straight.deployed.state_dict().items(), resumed.deployed.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), key


def test_checkpoints_load_weights_only(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))

    path = tmp_path / 'evil.pt'
    torch.save({'format': 'vla_learning.checkpoint/1', 'x': Evil()}, path)
    with pytest.raises(InputError, match='not a readable checkpoint') as refused:
        load_checkpoint(path)  # refused by the weights-only unpickler, named as the user's file
    assert isinstance(refused.value.__cause__, pickle.UnpicklingError)
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


def test_training_into_an_earlier_run_needs_resume_or_overwrite(tmp_path, tiny_data) -> None:
    # It silently replaced last.pt and step_*.pt: hours of training lost to a repeated command.
    over = {'train.steps': 3, 'train.checkpoint_every': 3}
    _trainer(tmp_path, tiny_data, **over).fit()
    kept = {p.name: p.read_bytes() for p in tmp_path.glob('*.pt')}
    assert set(kept) == {'last.pt', 'step_0000003.pt'}
    with pytest.raises(FileExistsError, match=r'last\.pt.*--resume.*--overwrite'):
        _trainer(tmp_path, tiny_data, **over).fit()
    assert {p.name: p.read_bytes() for p in tmp_path.glob('*.pt')} == kept
    # Overwriting starts clean: no checkpoint of the earlier run is left to mix with the new.
    (tmp_path / 'step_0000099.pt').write_bytes(kept['last.pt'])
    _trainer(tmp_path, tiny_data, **{**over, 'train.steps': 2, 'train.checkpoint_every': 2}).fit(
        overwrite=True
    )
    assert {p.name for p in tmp_path.glob('*.pt')} == {'last.pt', 'step_0000002.pt'}
    _trainer(tmp_path, tiny_data, **over).fit(resume=tmp_path / 'last.pt')  # continuing is fine


def test_cli_user_errors_are_one_line_and_exit_code_2(tmp_path, capsys, tiny_data) -> None:
    # A config typo, a missing config, a corrupt checkpoint: 15-52 line tracebacks before.
    from vla_learning.export.__main__ import main as export_main
    from vla_learning.train import main as train_main

    bad = tmp_path / 'last.pt'
    bad.write_bytes(b'not a checkpoint')
    (tmp_path / 'observations.npz').write_bytes(b'not an archive either')
    good = tmp_path / 'good.npz'
    tiny_data[1].record_observations(2).save(good)
    for main, argv, named in (
        (train_main, ['--config', str(TINY_YAML), '--set', 'train.stepz=3'], 'train.stepz'),
        (train_main, ['--config', str(tmp_path / 'typo.yaml')], 'typo.yaml'),
        (export_main, ['--checkpoint', str(bad), '--output', str(tmp_path / 'x')], 'npz'),
        (export_main, ['--checkpoint', str(bad), '--output', str(tmp_path / 'x'),
                       '--observations', str(good)], 'last.pt'),
    ):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err, err


def test_pretrained_localizer_is_grounded_then_frozen_through_training_and_resume(
    tiny_data, tmp_path
) -> None:
    gen = torch.Generator().manual_seed(0)
    data = coloured_scene_data(256, gen, tiny_data[0]), coloured_scene_data(64, gen, tiny_data[0])
    over = {
        'policy.scene.localizer': True, 'policy.scene.width': 8, 'policy.scene.pretrain_steps': 400,
        'policy.scene.pretrain_lr': 3e-3, 'policy.scene.pretrain_batch_size': 32,
        'train.batch_size': 32, 'train.steps': 4,
        'train.checkpoint_every': 2,
    }  # fmt: skip
    trainer = _trainer(tmp_path / 'a', data, **over)
    localizer = trainer.policy.localizer
    assert not any(id(p) in {id(q) for q in localizer.parameters()} for p in trainer.params)
    trainer.pretrain_localizer()
    pretrained = {k: v.clone() for k, v in localizer.state_dict().items()}
    losses = trainer.history['scene_pretrain_loss']
    assert len(losses) == 400 and sum(losses[-20:]) < 0.05 * sum(losses[:20])
    # Grounded on new layouts: the named square and the goal within a pixel (1 cm).
    assert max(trainer.history['scene_val_median_m']) < 0.01
    trunk_before = trainer.policy.scene_in[0].weight.clone()
    history = trainer.fit()
    assert len(history['scene_pretrain_loss']) == 400  # fit does not pretrain twice
    for name, value in localizer.state_dict().items():
        torch.testing.assert_close(value, pretrained[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(trainer.policy.scene_in[0].weight, trunk_before)  # the policy learns
    _, logs = trainer.policy.compute_loss(data[0].batch(torch.arange(4)))
    assert 'scene_rmse_m' not in logs  # frozen and teacher-fed: the localizer does not run

    resumed = _trainer(tmp_path / 'b', data, **{**over, 'train.steps': 6})
    resumed.fit(resume=tmp_path / 'a' / 'last.pt')
    assert len(resumed.history['scene_pretrain_loss']) == 400  # not pretrained again
    for name, value in resumed.policy.localizer.state_dict().items():
        torch.testing.assert_close(value, pretrained[name], rtol=0, atol=0, msg=name)


def test_pretraining_the_localizer_needs_the_scene_state(tiny_data, tmp_path) -> None:
    train, val = tiny_data
    features = train.features.replace(env_state_dim=4)
    data = tuple(dataclasses.replace(d, features=features) for d in (train, val))
    trainer = _trainer(
        tmp_path, data, **{'policy.scene.localizer': True, 'policy.scene.pretrain_steps': 2}
    )
    with pytest.raises(ValueError, match='environment_state'):
        trainer.fit()
