"""In-process expert demonstrations: the dataset format, clean labels under DART noise, crashes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_core.config import ConfigError
from vla_data.dataset.format import ENV_STATE_COLUMN, EpisodeDataset
from vla_data.dataset.lerobot import export_lerobot
from vla_sim import demos as sim_demos
from vla_sim import rollout
from vla_sim.config import SimConfig
from vla_sim.demos import SimDemoConfig, generate
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TabletopTask

SMALL_CAMERAS = SimConfig(
    scene_camera_width=64, scene_camera_height=48, wrist_camera_width=32, wrist_camera_height=32
)


def _generate(tmp_path, name: str, **cfg: object):
    config = SimDemoConfig(
        tasks=('push_red',), episodes_per_task=1, seed=3, rate=10.0, perturb_fraction=0.0,
        **{'slip_fraction': 0.0, **cfg},
    )  # fmt: skip
    return EpisodeDataset(
        generate(tmp_path / name, config, sim_config=SMALL_CAMERAS, progress=False), horizon=4
    )


def test_demos_are_a_dataset_with_clean_expert_labels_under_noise(tmp_path, monkeypatch) -> None:
    clean = _generate(tmp_path, 'clean', noise_rad=0.0)
    # Spy on what the expert asked for and what was executed in the noisy run.
    targets: list[np.ndarray] = []
    executed: list[np.ndarray] = []
    real_target, real_step = rollout.chunk_target, TabletopTask.step

    def spy_target(*args, **kwargs):
        targets.append(real_target(*args, **kwargs))
        return targets[-1]

    def spy_step(self, command=None, n=1):
        executed.append(command.values.copy())
        return real_step(self, command, n)

    monkeypatch.setattr(rollout, 'chunk_target', spy_target)
    monkeypatch.setattr(TabletopTask, 'step', spy_step)
    noisy = _generate(tmp_path, 'noisy', noise_rad=0.05)
    for data in (clean, noisy):
        assert data.fps == 10.0
        assert data.camera_names == ['scene_camera', 'wrist_camera']
        assert data.state_names == data.action_names
        assert data.state_names[-1] == 'gripper' and len(data.state_names) == 7
        (ep,) = data.episodes
        assert ep.task == 'push_red' and ep.seed == 3 and ep.instruction.startswith('push the red')
        arrays = data.episode_arrays(0)
        assert len(arrays['state']) == ep.length > 5
        # One frame every 1/rate s of sim time, stamps on that grid.
        np.testing.assert_array_equal(np.diff(arrays['stamp_ns']), 100_000_000)
        frame = data[2]
        assert frame['images']['scene_camera'].shape == (48, 64, 3)
        assert frame['action'].shape == (4, 7)
    assert clean.episodes[0].success
    # Same seed, same layout and start state.
    a, b = clean.episode_arrays(0), noisy.episode_arrays(0)
    np.testing.assert_allclose(a['state'][0], b['state'][0])
    # The recorded action of frame k is the expert's target at control tick 10 k (100 Hz / 10 Hz),
    # not the executed target + noise, ...
    ticks = np.arange(len(b['action'])) * 10
    np.testing.assert_allclose(b['action'], np.array(targets)[ticks], atol=1e-6)
    # ... the arm joints were driven with noise on top (the gripper without), ...
    noise = np.array(executed) - np.array(targets)
    assert 0.005 < noise[:, :6].std() < 0.1 and not noise[:, 6].any()
    # ... and it moved the arm off the clean run's path.
    assert np.abs(a['state'][5] - b['state'][5]).max() > 1e-3


def test_a_crash_mid_generation_leaves_no_dataset(tmp_path, monkeypatch) -> None:
    calls = []
    real = sim_demos._run_episode

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('simulated crash')
        return real(*args, **kwargs)

    monkeypatch.setattr(sim_demos, '_run_episode', crash_on_second)
    cfg = SimDemoConfig(tasks=('push_red',), episodes_per_task=2, rate=10.0, noise_rad=0.0)
    with pytest.raises(RuntimeError, match='simulated crash'):
        generate(tmp_path / 'ds', cfg, sim_config=SMALL_CAMERAS, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_config_rejects_unknown_tasks_and_off_grid_rates() -> None:
    with pytest.raises(ConfigError, match='tasks'):
        SimDemoConfig(tasks=('push_purple',))
    with pytest.raises(ConfigError, match='rate'):
        SimDemoConfig(rate=30.0, control_hz=100.0)


def test_scene_state_is_recorded_and_exported_to_lerobot(tmp_path) -> None:
    data = _generate(tmp_path, 'ds', noise_rad=0.0)
    assert data.env_state_names == list(sim_demos.ENV_STATE_NAMES)
    env = data.episode_arrays(0)['env_state']
    assert data[3]['env_state'].shape == (4,)
    # Frame 0 is the seed's layout: the instructed block and the target where reset put them.
    sim = MujocoSim(SMALL_CAMERAS)
    task = TabletopTask(sim, 'push_red')
    task.reset(3)
    np.testing.assert_allclose(env[0], task.scene_state(), atol=1e-6)
    np.testing.assert_array_equal(task.scene_state()[2:], sim.target_xy)
    np.testing.assert_array_equal(task.scene_state()[:2], sim.block_pose('red').position[:2])
    out = export_lerobot(data.root, tmp_path / 'lerobot')
    feature = json.loads((out / 'meta' / 'info.json').read_text())['features'][ENV_STATE_COLUMN]
    assert feature == {'dtype': 'float32', 'shape': [4], 'names': data.env_state_names}
    table = pq.read_table(out / 'data' / 'chunk-000' / 'file-000.parquet')
    np.testing.assert_array_equal(np.array(table.column(ENV_STATE_COLUMN).to_pylist()), env)


def test_a_slipped_block_shows_in_the_scene_state_and_the_expert_recovers(tmp_path) -> None:
    plain = _generate(tmp_path, 'plain', noise_rad=0.0)
    slipped = _generate(tmp_path, 'slip', noise_rad=0.0, slip_fraction=1.0, slip_m=0.05)
    block = {
        name: np.linalg.norm(np.diff(d.episode_arrays(0)['env_state'][:, :2], axis=0), axis=1)
        for name, d in (('plain', plain), ('slip', slipped))
    }
    # Pushed, the block moves at most a few cm per 0.1 s frame; the slip is one 5 cm jump.
    assert block['plain'].max() < 0.03
    assert (block['slip'] > 0.045).sum() == 1
    assert slipped.episodes[0].success and slipped.episodes[0].length > plain.episodes[0].length
    with pytest.raises(ConfigError, match='slip_fraction'):
        SimDemoConfig(slip_fraction=1.5)


def test_lerobot_flag_exports_the_generated_dataset(tmp_path, monkeypatch, capsys) -> None:
    small = SimDemoConfig(tasks=('push_red',), episodes_per_task=1, seed=3, rate=10.0,
                          perturb_fraction=0.0, slip_fraction=0.0)  # fmt: skip

    def small_generate(out, cfg, progress):  # the CLI's config, with small cameras
        return generate(out, small, sim_config=SMALL_CAMERAS, progress=progress)

    monkeypatch.setattr(sim_demos, 'generate', small_generate)
    out = tmp_path / 'ds'
    assert sim_demos.main(['--out', str(out), '--lerobot', '--no-progress']) == 0
    assert f'LeRobot v3: {out / "lerobot"}' in capsys.readouterr().out
    info = json.loads((out / 'lerobot' / 'meta' / 'info.json').read_text())
    assert info['total_episodes'] == 1 and info['fps'] == 10
    assert info['features']['observation.images.wrist_camera']['info']['video.codec'] == 'h264'
    assert EpisodeDataset(out).episodes[0].task == 'push_red'  # the export sits beside our format
