"""Closed-loop evaluation: outcomes, failure diagnostics, report files, with scripted policies."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vla_core.chunk import ActionChunk
from vla_core.control.reference import TrackerConfig
from vla_sim.config import SimConfig
from vla_sim.evaluation.policy import main, run_episodes
from vla_sim.evaluation.true_scene import TrueSceneBackend
from vla_sim.expert import PushExpert
from vla_sim.scene import BLOCK_COLORS
from vla_sim.sim import MujocoSim


class _ExpertPolicy:
    """The privileged scripted expert behind the backend interface: what a perfect policy does."""

    def __init__(self, sim: MujocoSim) -> None:
        self.sim = sim
        self.expert = PushExpert(sim)
        self.spec = SimpleNamespace(num_cameras=1, image_size=32, joint_names=sim.joint_names)

    def infer(self, obs) -> ActionChunk:
        colour = next(c for c in BLOCK_COLORS if f' {c} ' in obs.instruction)
        return self.expert.act(colour, self.sim.target_xy)


class _HoldStill(_ExpertPolicy):
    def infer(self, obs) -> ActionChunk:
        return ActionChunk(obs.stamp, 0.05, self.spec.joint_names, np.tile(obs.state, (4, 1)))


@pytest.fixture(scope='module')
def sim():
    sim = MujocoSim(SimConfig(scene_camera_width=32, scene_camera_height=32))
    sim.connect()
    yield sim
    sim.disconnect()


def test_a_policy_that_solves_the_task_scores_and_is_reported(sim, tmp_path) -> None:
    out = run_episodes(
        _ExpertPolicy(sim), ['push_red', 'push_blue'], 2, 100_000, tmp_path, videos=1,
        progress=False, label='expert', sim=sim,
    )  # fmt: skip
    assert [(o.task, o.seed) for o in out] == [  # the schedule the graph evaluation runs too
        ('push_red', 100_000), ('push_blue', 100_000), ('push_red', 100_001), ('push_blue', 100_001)
    ]  # fmt: skip
    assert all(o.success for o in out)
    for o in out:
        assert o.final_distance_m <= sim.config.target_radius < o.start_distance_m
        assert o.block_travel_m > o.start_distance_m - sim.config.target_radius - 1e-3
        assert o.closest_approach_m < 0.045  # the tool touched the block to push it
        assert o.sim_time < 20.0 and o.chunks >= 10 * o.sim_time - 1
    report = json.loads((tmp_path / 'results.json').read_text())
    assert report['artifact'] == 'expert'
    assert report['summary']['push_red']['success'] == 2
    assert 'failures' not in report['summary']['push_red']
    lo, hi = report['summary']['push_blue']['wilson95']
    assert 0.3 < lo < hi == 1.0
    assert (tmp_path / 'success.png').stat().st_size > 0
    assert (tmp_path / 'push_red_seed100000.mp4').stat().st_size > 0
    assert not (tmp_path / 'push_red_seed100001.mp4').exists()  # videos=1


def test_failures_are_told_apart(sim, tmp_path, capsys) -> None:
    out = run_episodes(
        _HoldStill(sim), ['push_green'], 2, 100_000, tmp_path, videos=0, time_limit_s=1.0,
        progress=False, sim=sim,
    )  # fmt: skip
    assert not any(o.success for o in out)
    for o in out:
        assert o.sim_time == pytest.approx(1.0)
        assert o.block_travel_m < 1e-3 and o.others_travel_m < 1e-3
        assert o.final_distance_m == pytest.approx(o.start_distance_m, abs=1e-3)
        assert o.closest_approach_m > 0.045
    failures = json.loads((tmp_path / 'results.json').read_text())['summary']['push_green'][
        'failures'
    ]
    assert failures['never_reached_block'] == 2 and failures['block_not_moved'] == 2
    assert failures['other_block_moved'] == 0 and failures['pushed_closer'] == 0
    assert 'never_reached_block 2' in capsys.readouterr().out


@pytest.mark.parametrize('mode', ['splice', 'ensemble'])
def test_chunks_can_go_through_the_controllers_tracker(sim, tmp_path, mode) -> None:
    tracking = TrackerConfig(mode=mode, blend_time=0.05)
    out = run_episodes(
        _ExpertPolicy(sim), ['push_green'], 1, 100_000, tmp_path, videos=0, tracking=tracking,
        progress=False, sim=sim,
    )  # fmt: skip
    assert out[0].success
    settings = json.loads((tmp_path / 'results.json').read_text())['settings']
    assert settings['tracking']['mode'] == mode and settings['tracking']['blend_time'] == 0.05
    assert (settings['rate_hz'], settings['time_limit_s']) == (10.0, 20.0)


class _SceneStateRecorder(_ExpertPolicy):
    """The expert behind a torch-backend look-alike whose policy's scene localizer is asked
    at every inference: what the true-scene wrapper gives it is recorded."""

    def __init__(self, sim: MujocoSim) -> None:
        super().__init__(sim)
        self.policy = torch.nn.Linear(1, 1)
        self.policy.localizer = torch.nn.Identity()  # replaced by the wrapper while inferring
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def infer(self, obs) -> ActionChunk:
        task_block = next(c for c in BLOCK_COLORS if f' {c} ' in obs.instruction)
        now = np.array([*self.sim.block_pose(task_block).position[:2], *self.sim.target_xy])
        given = self.policy.localizer(torch.zeros(1, 3, 8, 8), None)[0].numpy()
        self.seen.append((given, now))
        return super().infer(obs)


def test_the_true_scene_state_can_replace_perception(sim, tmp_path, capsys) -> None:
    policy = _SceneStateRecorder(sim)
    run_episodes(
        TrueSceneBackend(policy), ['push_blue'], 1, 100_000, tmp_path, videos=0,
        time_limit_s=1.0, progress=False, sim=sim,
    )  # fmt: skip
    assert len(policy.seen) >= 10
    for given, now in policy.seen:  # the named block's and the target's xy at that instant
        np.testing.assert_allclose(given, now, atol=1e-6)  # float32
    report = json.loads((tmp_path / 'results.json').read_text())
    assert report['settings']['scene_state'] == 'true (sim)'
    argv = ['--artifact', str(tmp_path), '--true-scene-state']  # the ONNX Runtime default
    assert main(argv) == 2
    assert 'needs --backend torch' in capsys.readouterr().err


def test_cli_refuses_a_bad_tracker_config(tmp_path, capsys) -> None:
    argv = ['--artifact', str(tmp_path), '--tracking', 'splice', '--blend-time', '-1']
    assert main(argv) == 2
    assert 'blend_time' in capsys.readouterr().err


@pytest.mark.parametrize('artifact', ['missing', 'not_an_export', 'corrupt'])
def test_cli_user_errors_are_one_line_naming_the_artifact(
    tmp_path, capsys, flow_export, artifact
) -> None:
    # They were 15-52 line tracebacks; --debug still shows one.
    path = tmp_path / artifact
    if artifact == 'not_an_export':
        path.mkdir()
    elif artifact == 'corrupt':
        import shutil

        shutil.copytree(flow_export, path)
        (path / 'model.onnx').write_bytes(b'not a model')
    argv = ['--artifact', str(path), '--episodes', '1', '--out', str(tmp_path / 'eval')]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    with pytest.raises(Exception):  # noqa: B017 (which one depends on the fault)
        main([*argv, '--debug'])
