import math

import numpy as np
import pytest

from vla_core.chunk import ActionChunk
from vla_core.robot import JointCommand
from vla_sim.expert import ExpertConfig, IkSolver, PushExpert, chunk_target
from vla_sim.rollout import run_episode
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TASKS, TabletopTask, TaskConfig


@pytest.fixture(scope='module')
def sim() -> MujocoSim:
    s = MujocoSim()
    s.connect()
    return s


def _layout(sim: MujocoSim) -> np.ndarray:
    blocks = [sim.block_pose(c).position for c in ('red', 'green', 'blue')]
    return np.concatenate([*blocks, sim.target_xy, sim.read_state().position])


def test_three_language_tasks() -> None:
    assert set(TASKS) == {'push_red', 'push_green', 'push_blue'}
    for spec in TASKS.values():
        assert spec.block in spec.instruction and 'target' in spec.instruction


def test_reset_is_seeded(sim: MujocoSim) -> None:
    task = TabletopTask(sim, 'push_green')
    task.reset(3)
    a = _layout(sim)
    task.reset(4)
    b = _layout(sim)
    task.reset(3)
    np.testing.assert_array_equal(_layout(sim), a)
    assert not np.allclose(a, b)
    assert not task.is_success() and task.elapsed == 0.0
    d = np.linalg.norm(sim.block_pose('green').position[:2] - sim.target_xy)
    assert task.config.push_distance[0] <= d <= task.config.push_distance[1]


def test_success_predicate_and_time_limit(sim: MujocoSim) -> None:
    task = TabletopTask(sim, 'push_blue', TaskConfig(time_limit_s=1.0))
    task.reset(0)
    sim.set_block_pose('blue', (sim.target_xy[0] + 0.03, sim.target_xy[1]), 0.0)
    assert task.is_success()
    sim.set_block_pose('blue', (sim.target_xy[0] + 0.06, sim.target_xy[1]), 0.0)
    assert not task.is_success()
    result = task.step(n=round(task.config.time_limit_s / sim.control_period))
    assert result.done and not result.success


def test_ik_seed_is_exact(sim: MujocoSim) -> None:
    ik = IkSolver(sim)
    for p in ([0.35, 0.0, 0.15], [0.5, 0.2, 0.022], [0.32, -0.2, 0.022]):
        p = np.array(p)
        q = ik.seed(p, math.atan2(p[1], p[0]))
        pos, rot = ik.forward(q)
        np.testing.assert_allclose(pos, p, atol=1e-9)
        np.testing.assert_allclose(rot[:, 2], [0, 0, -1], atol=1e-9)  # tool points down


def test_expert_emits_a_stamped_chunk(sim: MujocoSim) -> None:
    task = TabletopTask(sim, 'push_red')
    task.reset(1)
    sim.step(7)
    expert = PushExpert(sim, ExpertConfig(horizon=8, dt=0.1))
    chunk = expert.act(task.block, task.target_xy)
    assert isinstance(chunk, ActionChunk)
    assert chunk.stamp == pytest.approx(sim.now()) and chunk.dt == 0.1
    assert chunk.joint_names == sim.joint_names and chunk.targets.shape == (8, 7)
    assert chunk.source == 'expert' and chunk.sequence == 1
    lo, hi = sim.limits.bounds('position')
    assert np.all(chunk.targets >= lo - 1e-9) and np.all(chunk.targets <= hi + 1e-9)
    np.testing.assert_allclose(
        chunk_target(chunk, chunk.stamp + 0.15), chunk.targets[1:3].mean(0), atol=1e-12
    )
    # Labelling is a pure function of the state: asking twice gives the same chunk.
    again = expert.act(task.block, task.target_xy)
    np.testing.assert_array_equal(again.targets, chunk.targets)
    with pytest.raises(ValueError, match='unknown block'):
        expert.act('purple', task.target_xy)


@pytest.mark.parametrize('task_name', list(TASKS))
def test_expert_succeeds_nominal(sim: MujocoSim, task_name: str) -> None:
    for seed in (10, 11):
        result = run_episode(sim, task_name, seed)
        assert result.success, (task_name, seed)
        assert result.sim_time < 10.0


def test_expert_recovers_from_perturbation(sim: MujocoSim) -> None:
    nominal = run_episode(sim, 'push_green', 5)
    perturbed = run_episode(sim, 'push_green', 5, perturb_at=0.5 * nominal.sim_time)
    assert perturbed.perturbed_at == pytest.approx(0.5 * nominal.sim_time, abs=0.03)
    assert perturbed.success
    assert perturbed.sim_time > nominal.sim_time  # recovering costs time


def test_slip_moves_only_the_named_block_clear_of_the_others(sim: MujocoSim) -> None:
    task = TabletopTask(sim, 'push_red')
    rng = np.random.default_rng(0)
    for seed in range(5):
        task.reset(seed)
        before = {c: sim.block_pose(c) for c in ('red', 'green', 'blue')}
        assert task.slip_block(rng, 0.04)
        after = {c: sim.block_pose(c) for c in ('red', 'green', 'blue')}
        jump = after['red'].position - before['red'].position
        assert np.linalg.norm(jump[:2]) == pytest.approx(0.04) and jump[2] == pytest.approx(0)
        np.testing.assert_allclose(after['red'].quat_wxyz, before['red'].quat_wxyz)
        for other in ('green', 'blue'):
            np.testing.assert_array_equal(after[other].position, before[other].position)
            gap = np.linalg.norm(after[other].position[:2] - after['red'].position[:2])
            assert gap >= task.config.block_separation
        cfg = task.config
        assert cfg.workspace_x[0] <= after['red'].position[0] <= cfg.workspace_x[1]
        assert cfg.workspace_y[0] <= after['red'].position[1] <= cfg.workspace_y[1]
    # Nowhere to go (a slip longer than the workspace): the block stays, and it says so.
    task.reset(0)
    before = sim.block_pose('red').position.copy()
    assert not task.slip_block(rng, 1.0)
    np.testing.assert_array_equal(sim.block_pose('red').position, before)


def test_expert_recovers_from_a_slipped_block(sim: MujocoSim) -> None:
    nominal = run_episode(sim, 'push_red', 4)
    slipped = run_episode(sim, 'push_red', 4, slip_at=0.5 * nominal.sim_time, slip_m=0.05)
    assert slipped.slipped_at == pytest.approx(0.5 * nominal.sim_time, abs=0.03)
    assert slipped.success and slipped.perturbed_at is None and nominal.slipped_at is None
    assert slipped.sim_time != nominal.sim_time


def test_episodes_are_deterministic(sim: MujocoSim) -> None:
    short = TaskConfig(time_limit_s=1.5)
    a = run_episode(sim, 'push_blue', 2, perturb_at=1.0, task_config=short)
    b = run_episode(sim, 'push_blue', 2, perturb_at=1.0, task_config=short)
    assert (a.success, a.sim_time, a.perturbed_at) == (b.success, b.sim_time, b.perturbed_at)


def test_expert_pushes_around_a_block_standing_where_it_would_push_from(sim: MujocoSim) -> None:
    task = TabletopTask(sim, 'push_blue', TaskConfig(time_limit_s=12.0))
    task.reset(0)
    b, goal = sim.block_pose('blue').position[:2], task.target_xy
    d = (goal - b) / np.linalg.norm(goal - b)
    sim.set_block_pose('red', tuple(b - 0.07 * d), 0.0)  # right on the straight pre-push spot
    sim.set_block_pose('green', tuple(b - 0.07 * d + 0.15 * np.array([-d[1], d[0]])), 0.0)
    expert = PushExpert(sim)
    result = task.step()
    while not result.done:
        chunk = expert.act(task.block, task.target_xy)
        for _ in range(5):
            result = task.step(JointCommand('position', chunk_target(chunk, sim.now())))
            if result.done:
                break
    assert result.success
