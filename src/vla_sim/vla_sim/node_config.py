"""Parameters of the sim node (:mod:`vla_sim.sim_node`): the simulated robot, its tasks, the
publication rates, the episode schedule and lockstep."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, param
from vla_sim.config import SimConfig
from vla_sim.expert import ExpertConfig
from vla_sim.tasks import TASKS, TaskConfig

__all__ = ['SimNodeConfig']


@dataclass(frozen=True, kw_only=True)
class SimNodeConfig(Config):
    sim: SimConfig = param(default_factory=SimConfig, description='simulated robot and scene')
    task: TaskConfig = param(default_factory=TaskConfig, description='task randomization')
    expert: ExpertConfig = param(default_factory=ExpertConfig, description='scripted expert')
    task_name: str = param(
        'push_red', description='task of the first episode', choices=tuple(TASKS)
    )
    task_cycle: tuple[str, ...] = param(
        tuple(TASKS),
        description='tasks that episodes cycle through (automatic resets, resets naming no task)',
        choices=tuple(TASKS),
    )
    seed: int = param(0, description='seed of the first episode', range=(0, 2**31 - 1))
    seed_schedule: str = param(
        'per_episode',
        description='per_episode: the next task of task_cycle and the next seed every episode; '
        'per_task: every task at seed, seed + 1, ... interleaved (the pairs of the in-process '
        'evaluation; task_name unused)',
        choices=('per_episode', 'per_task'),
    )
    episodes_per_task: int = param(
        0, description='per_task: seeds per task, then no new episode; 0: endless',
        range=(0, 1_000_000),
    )  # fmt: skip
    auto_reset: bool = param(
        True, description='start the next episode (next seed) after success or the time limit'
    )
    episode_log: str = param('', description='append each episode outcome here (JSON lines)')
    reset_controller: str = param(
        '', description="Trigger service called at every reset (the controller's control/reset)"
    )
    lockstep: bool = param(
        False, description='step only when the command for the tick (and due chunks) arrived'
    )
    policy_chunks: str = param(
        '', description="topic of the policy's chunks: await_graph waits for its publisher, "
        'lockstep for the chunk of every camera frame; empty: no policy',
    )  # fmt: skip
    await_graph: bool = param(
        False, description='start the first episode once the controller (and the policy) are '
        'connected (lockstep always does)',
    )  # fmt: skip
    lockstep_timeout: float = param(
        60.0, description='lockstep: wall time to wait for a command or chunk [s]',
        range=(0.1, 3600.0),
    )  # fmt: skip
    real_time_factor: float = param(
        1.0, description='sim seconds per wall second; 0 runs as fast as possible',
        range=(0.0, 100.0),
    )  # fmt: skip
    publish_clock: bool = param(True, description='publish /clock (for use_sim_time nodes)')
    state_rate_hz: float = param(
        100.0, description='joint_states, /tf and /clock rate [Hz] (at most the control rate)',
        range=(1.0, 1000.0),
    )  # fmt: skip
    imu_rate_hz: float = param(200.0, description='imu/data_raw rate [Hz]', range=(0.0, 1000.0))
    camera_rate_hz: float = param(
        15.0, description='rate of each camera [Hz]; 0 disables rendering', range=(0.0, 120.0)
    )
    expert_rate_hz: float = param(
        0.0, description='scripted expert chunks on expert/action_chunk [Hz]; 0: off',
        range=(0.0, 50.0),
    )  # fmt: skip
    diagnostics_period: float = param(1.0, description='[s]', range=(0.1, 60.0))
