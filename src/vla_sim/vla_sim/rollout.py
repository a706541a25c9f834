"""Run the scripted expert through episodes, optionally perturbing the arm mid-episode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time

import numpy as np

from vla_core.robot import JointCommand
from vla_sim.expert import ExpertConfig, PushExpert, chunk_target
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TabletopTask, TaskConfig

__all__ = ['EpisodeResult', 'run_episode']


@dataclass(frozen=True)
class EpisodeResult:
    task: str
    seed: int
    success: bool
    sim_time: float  # [s] episode length in sim time
    wall_time: float  # [s]
    perturbed_at: float | None  # [s] episode time of the perturbation, if one was applied


def run_episode(
    sim: MujocoSim,
    task_name: str,
    seed: int,
    *,
    expert_config: ExpertConfig | None = None,
    task_config: TaskConfig | None = None,
    replan_period: float = 0.1,
    perturb_at: float | None = None,
    perturb_magnitude: float = 0.3,
    on_step: Callable[[np.ndarray], np.ndarray] | None = None,
) -> EpisodeResult:
    """One expert episode in position mode; the expert re-plans every ``replan_period`` s.

    With ``perturb_at``, the arm is teleported by random joint offsets at that episode time
    (seeded by ``seed``), and the expert has to recover from wherever that leaves it.
    ``on_step(target)`` is called every control period, before the step, with the expert's
    joint target (in ``sim.joint_names`` order) and returns the target to execute: a recorder
    reads the sim there, a noise injector returns the target plus noise.
    """
    if sim.actuation_mode != 'position':
        raise ValueError('the expert emits joint-position targets: use actuation=position')
    if not sim.is_connected:
        sim.connect()
    task = TabletopTask(sim, task_name, task_config)
    expert = PushExpert(sim, expert_config)
    rng = np.random.default_rng([seed, 7919])  # independent of the layout stream
    wall0 = time.perf_counter()
    task.reset(seed)
    replan_every = max(1, round(replan_period / sim.control_period))
    chunk = None
    perturbed: float | None = None
    step = 0
    while True:
        if perturb_at is not None and perturbed is None and task.elapsed >= perturb_at - 1e-9:
            if task.perturb(rng, perturb_magnitude):
                perturbed = task.elapsed
            chunk = None  # the old plan is stale
            step = 0
        if chunk is None or step % replan_every == 0:
            chunk = expert.act(task.block, task.target_xy)
        target = chunk_target(chunk, sim.now())
        if on_step is not None:
            target = on_step(target)
        result = task.step(JointCommand('position', target, chunk.joint_names, stamp=sim.now()))
        step += 1
        if result.done:
            break
    return EpisodeResult(
        task=task_name,
        seed=seed,
        success=result.success,
        sim_time=result.time,
        wall_time=time.perf_counter() - wall0,
        perturbed_at=perturbed,
    )
