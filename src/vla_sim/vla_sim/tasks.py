"""Language-conditioned push tasks on the one tabletop scene.

``push_red``, ``push_green`` and ``push_blue``: push the named block until its centre lies in the
yellow target disc. Each episode randomizes, from its seed, the arm's start joints, every block's
position and yaw, and the target, keeping the pushing corridor free of the other blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import itertools
import math

import numpy as np

from vla_core.config import Config, ConfigError, param
from vla_core.robot import JointCommand
from vla_sim.scene import ARM_JOINTS, BLOCK_COLORS, BLOCK_HALF_SIZE
from vla_sim.sim import HOME_QPOS, MujocoSim

__all__ = [
    'SCENE_STATE_NAMES', 'TASKS', 'StepResult', 'TabletopTask', 'TaskConfig', 'TaskSpec',
    'cycling_schedule', 'episode_schedule', 'segment_distance',
]  # fmt: skip


@dataclass(frozen=True)
class TaskSpec:
    name: str
    block: str
    instruction: str


TASKS: dict[str, TaskSpec] = {
    f'push_{color}': TaskSpec(
        f'push_{color}', color, f'push the {color} block into the yellow target region'
    )
    for color in BLOCK_COLORS
}

# Privileged scene state (world frame): where the instructed block and the target are. Datasets
# record it with every frame; perception must recover it from the cameras.
SCENE_STATE_NAMES = ('block.x', 'block.y', 'target.x', 'target.y')


@dataclass(frozen=True, kw_only=True)
class TaskConfig(Config):
    time_limit_s: float = param(20.0, description='episode time limit [s]', range=(1.0, 600.0))
    workspace_x: tuple[float, ...] = param(
        (0.32, 0.52), description='x range of block and target centres [m]', range=(0.2, 0.6)
    )
    workspace_y: tuple[float, ...] = param(
        (-0.2, 0.2), description='y range of block and target centres [m]', range=(-0.4, 0.4)
    )
    push_distance: tuple[float, ...] = param(
        (0.12, 0.25), description='min/max block-to-target distance at start [m]',
        range=(0.0, 0.6),
    )  # fmt: skip
    block_separation: float = param(
        0.1, description='min distance between block centres at start [m]', range=(0.05, 0.3)
    )
    corridor_clearance: float = param(
        0.08, description='min distance of other blocks from the push corridor [m]',
        range=(0.0, 0.3),
    )  # fmt: skip
    arm_noise_rad: float = param(
        0.05, description='uniform noise on the arm start joints [rad]', range=(0.0, 0.5)
    )

    def validate(self) -> None:
        for name in ('workspace_x', 'workspace_y', 'push_distance'):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(name, f'must be (min, max), got {lo_hi}')


@dataclass(frozen=True)
class StepResult:
    time: float  # [s] episode time after the step
    success: bool
    done: bool  # success or time limit


class TabletopTask:
    """One push task bound to a sim: seeded reset, step, success predicate and time limit."""

    def __init__(self, sim: MujocoSim, name: str, config: TaskConfig | None = None) -> None:
        if name not in TASKS:
            raise KeyError(f'unknown task {name!r}; known: {list(TASKS)}')
        self.sim = sim
        self.spec = TASKS[name]
        self.config = config if config is not None else TaskConfig()
        self._start = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def instruction(self) -> str:
        return self.spec.instruction

    @property
    def block(self) -> str:
        return self.spec.block

    @property
    def target_xy(self) -> np.ndarray:
        return self.sim.target_xy

    def reset(self, seed: int) -> None:
        """Randomized initial state from ``seed`` (same seed, same state)."""
        # The task is part of the seed: tasks must not replay one layout with recoloured blocks.
        rng = np.random.default_rng([seed, list(TASKS).index(self.name)])
        cfg = self.config
        self.sim.reset()
        q = HOME_QPOS.copy()
        q[: len(ARM_JOINTS)] += rng.uniform(-cfg.arm_noise_rad, cfg.arm_noise_rad, len(ARM_JOINTS))
        self.sim.set_joint_positions(q)
        blocks, target = self._sample_layout(rng)
        for color, (xy, yaw) in blocks.items():
            self.sim.set_block_pose(color, xy, yaw, forward=False)
        self.sim.set_target(target)
        self._start = self.sim.now()

    def _sample_layout(
        self, rng: np.random.Generator
    ) -> tuple[dict[str, tuple[np.ndarray, float]], np.ndarray]:
        cfg = self.config
        lo = np.array([cfg.workspace_x[0], cfg.workspace_y[0]])
        hi = np.array([cfg.workspace_x[1], cfg.workspace_y[1]])
        for _ in range(10000):
            main = rng.uniform(lo, hi)
            target = rng.uniform(lo, hi)
            dist = float(np.linalg.norm(target - main))
            if not cfg.push_distance[0] <= dist <= cfg.push_distance[1]:
                continue
            # Corridor from behind the block (where the pusher stands) to the target.
            behind = main - (target - main) / dist * 0.07
            others = [rng.uniform(lo, hi) for _ in range(len(BLOCK_COLORS) - 1)]
            centres = [main, *others]
            if any(
                np.linalg.norm(centres[i] - centres[j]) < cfg.block_separation
                for i in range(len(centres))
                for j in range(i)
            ):
                continue
            if any(
                segment_distance(o, behind, target) < cfg.corridor_clearance
                or np.linalg.norm(o - target) < self.sim.config.target_radius + 0.05
                for o in others
            ):
                continue
            colors = [self.block, *(c for c in BLOCK_COLORS if c != self.block)]
            yaws = rng.uniform(-math.pi / 4, math.pi / 4, len(colors))
            return {c: (p, float(y)) for c, p, y in zip(colors, centres, yaws, strict=True)}, target
        raise RuntimeError('could not sample a layout; the task config is too tight')

    @property
    def elapsed(self) -> float:
        return self.sim.now() - self._start

    def scene_state(self) -> np.ndarray:
        """``(4,)`` float64, as :data:`SCENE_STATE_NAMES` [m]."""
        return np.array([*self.sim.block_pose(self.block).position[:2], *self.sim.target_xy])

    def is_success(self) -> bool:
        """Block centre inside the target disc and resting on the table."""
        p = self.sim.block_pose(self.block).position
        in_disc = float(np.linalg.norm(p[:2] - self.sim.target_xy)) <= self.sim.config.target_radius
        return bool(in_disc and p[2] < BLOCK_HALF_SIZE + 0.01)

    def is_timed_out(self) -> bool:
        return self.elapsed >= self.config.time_limit_s - 1e-9

    def step(self, command: JointCommand | None = None, n: int = 1) -> StepResult:
        """Send ``command`` (if any), advance ``n`` control periods, report the outcome."""
        if command is not None:
            self.sim.send_command(command)
        self.sim.step(n)
        success = self.is_success()
        return StepResult(self.elapsed, success, success or self.is_timed_out())

    def perturb(self, rng: np.random.Generator, magnitude: float = 0.3, tries: int = 50) -> bool:
        """Teleport the arm by random joint offsets (uniform +-``magnitude`` rad), at rest.

        Offsets that would put the arm into the table or a block are redrawn, shrinking, up to
        ``tries`` times; returns whether a collision-free perturbation was applied.
        """
        state = self.sim.read_state()
        n = len(ARM_JOINTS)
        for i in range(tries):
            scale = magnitude * (1.0 - i / tries)
            q = state.position.copy()
            q[:n] += rng.uniform(-scale, scale, n)
            self.sim.set_joint_positions(q)
            if not self.sim.robot_in_contact():
                return True
        self.sim.set_joint_positions(state.position)
        return False

    def slip_block(self, rng: np.random.Generator, distance: float, tries: int = 50) -> bool:
        """Teleport the named block ``distance`` m in a random direction, at rest, keeping its
        orientation: a slip off the push line that the pusher has to recover from.

        Directions that leave the workspace, come within ``block_separation`` of another block
        or put the block into the robot are redrawn, up to ``tries`` times; returns whether a
        slip was applied.
        """
        cfg = self.config
        start = self.sim.block_pose(self.block).position[:2].copy()
        lo = np.array([cfg.workspace_x[0], cfg.workspace_y[0]])
        hi = np.array([cfg.workspace_x[1], cfg.workspace_y[1]])
        others = [self.sim.block_pose(c).position[:2] for c in BLOCK_COLORS if c != self.block]
        for _ in range(tries):
            angle = rng.uniform(-math.pi, math.pi)
            xy = start + distance * np.array([math.cos(angle), math.sin(angle)])
            if np.any(xy < lo) or np.any(xy > hi):
                continue
            if any(np.linalg.norm(xy - o) < cfg.block_separation for o in others):
                continue
            self.sim.move_block(self.block, xy)
            if not self.sim.robot_in_contact(include_table=False):
                return True
        self.sim.move_block(self.block, start)
        return False


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from point ``p`` to the segment ``a``-``b``."""
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom < 1e-12 else min(1.0, max(0.0, float((p - a) @ ab) / denom))
    return float(np.linalg.norm(p - (a + t * ab)))


def episode_schedule(
    tasks: Sequence[str], seed: int, episodes_per_task: int | None = None
) -> Iterator[tuple[str, int]]:
    """The (task, seed) of each episode of a seeded evaluation: every task runs seeds ``seed``,
    ``seed + 1``, ..., interleaved (each task at one seed, then each at the next), so a run cut
    short still covers every task. In-process and graph evaluations share it, so they run the
    same pairs. ``episodes_per_task`` None: endless."""
    rounds = itertools.count() if episodes_per_task is None else range(episodes_per_task)
    for i in rounds:
        for task in tasks:
            yield task, seed + i


def cycling_schedule(tasks: Sequence[str], first_task: str, seed: int) -> Iterator[tuple[str, int]]:
    """Endless episodes from ``first_task`` at ``seed``: each next one the next task of the cycle
    (the first of it, if ``first_task`` is not in it) and the next seed."""
    task = first_task
    for s in itertools.count(seed):
        yield task, s
        task = tasks[(tasks.index(task) + 1) % len(tasks)] if task in tasks else tasks[0]
