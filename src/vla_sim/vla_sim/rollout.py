"""Run the scripted expert through episodes, optionally perturbing the arm or slipping the
block mid-episode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time

import numpy as np

from vla_core.chunk import ActionChunk
from vla_core.control import ControllerConfig, JointSample, ResidualController
from vla_core.robot import JointCommand
from vla_sim.expert import ExpertConfig, PushExpert, chunk_target
from vla_sim.sim import MujocoSim
from vla_sim.tasks import TabletopTask, TaskConfig

__all__ = ['EpisodeResult', 'expert_rollout_targets', 'run_episode']


@dataclass(frozen=True)
class EpisodeResult:
    task: str
    seed: int
    success: bool
    sim_time: float  # [s] episode length in sim time
    wall_time: float  # [s]
    perturbed_at: float | None  # [s] episode time of the perturbation, if one was applied
    slipped_at: float | None = None  # [s] episode time of the block's slip, if one was applied


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
    slip_at: float | None = None,
    slip_m: float = 0.04,
    on_step: Callable[[np.ndarray], np.ndarray] | None = None,
    controller: ControllerConfig | None = None,
) -> EpisodeResult:
    """One expert episode in position mode; the expert re-plans every ``replan_period`` s.

    With ``perturb_at``, the arm is teleported by random joint offsets at that episode time
    (seeded by ``seed``), and the expert has to recover from wherever that leaves it. With
    ``slip_at``, the named block jumps ``slip_m`` in a random direction at that time
    (:meth:`TabletopTask.slip_block`): the expert re-approaches it from its new place.
    ``on_step(target)`` is called every control period, before the step, with the expert's
    joint target (in ``sim.joint_names`` order) and returns the target to execute: a recorder
    reads the sim there, a noise injector returns the target plus noise. With ``controller``
    the expert's chunks go through a :class:`ResidualController` of that config (joint names
    the sim's, position mode) at the control rate, as in the deployed graph, and its command is
    executed instead of the chunk's linear interpolation (how demonstrations are executed).
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
    ctl = None if controller is None else ResidualController(controller)
    chunk = None
    perturbed: float | None = None
    slipped: float | None = None  # when the block slipped; -1 when no slip could be placed
    step = 0
    while True:
        if perturb_at is not None and perturbed is None and task.elapsed >= perturb_at - 1e-9:
            if task.perturb(rng, perturb_magnitude):
                perturbed = task.elapsed
            chunk = None  # the old plan is stale
            step = 0
            if ctl is not None:
                ctl.reset()  # the arm was teleported: restart from where it is
        if slip_at is not None and slipped is None and task.elapsed >= slip_at - 1e-9:
            slipped = task.elapsed if task.slip_block(rng, slip_m) else -1.0
            chunk = None
            step = 0
        if chunk is None or step % replan_every == 0:
            chunk = expert.act(task.block, task.target_xy)
            if ctl is not None:
                ctl.push_chunk(chunk, sim.now())
        if ctl is None:
            target = chunk_target(chunk, sim.now())
        else:
            state = sim.read_state()
            sample = JointSample(state.stamp, state.position.copy(), state.velocity.copy())
            target = ctl.update(sim.now(), sim.control_period, sample).position
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
        slipped_at=slipped if slipped is not None and slipped >= 0 else None,
    )


def expert_rollout_targets(
    sim: MujocoSim,
    expert: PushExpert,
    block: str,
    target_xy: np.ndarray,
    *,
    chunk: ActionChunk,
    phase: int,
    replan_every: int,
    sample_every: int,
    samples: int,
) -> np.ndarray:
    """What the re-planning expert would command from the sim's current state: its targets
    every ``sample_every`` control periods, ``samples`` of them, ``(samples, joints)``.

    The expert takes over with ``chunk``, its plan in force now, and re-plans on the episode's
    grid (``phase`` control periods after a re-plan, every ``replan_every``), executing without
    noise; the sim is restored afterwards. When that expert is the one driving the episode, the
    result is exactly the targets it goes on to command: labels for states a policy visits that
    mean the same as the demonstrations' (an open-loop plan does not; the arm lags it).
    """
    snapshot = sim.snapshot()
    out = []
    try:
        for k in range(samples * sample_every):
            if k and (phase + k) % replan_every == 0:
                chunk = expert.act(block, target_xy)
            target = chunk_target(chunk, sim.now())
            if k % sample_every == 0:
                out.append(target)
                if len(out) == samples:
                    break
            sim.send_command(JointCommand('position', target, chunk.joint_names, stamp=sim.now()))
            sim.step()
    finally:
        sim.restore(snapshot)
    return np.array(out)
