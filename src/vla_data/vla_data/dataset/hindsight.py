"""Scene labels from what a robot records: where the pushed object and the goal were, in hindsight.

A recorded demonstration has joint states, images, the instruction and whether it succeeded; it
does not have the object's or the goal's position. Those follow from the kinematics in hindsight:

- the tool pushes only at contact height (``contact_height_m``): each stretch the tool spends
  that low is a push; it touches the object once it has travelled ``approach_gap_m`` there
  (the demonstrator's stand-off), and from then on the object's centre is ``contact_offset_m``
  ahead of the tool centre along the tool's direction of travel;
- between pushes the object rests where the next push finds it (so a slip between two pushes is
  labelled by where the second push meets it), and after the last push where that push left it;
- in a successful episode the object ended in the goal region: the goal is where the last push
  left it, plus ``goal_overshoot_m`` along the object's overall travel (an episode that ends on
  entering a region stops that far short of its centre; 0 when demonstrations push to the centre).

Each label is off by the pusher's sideways offset on the object (a centimetre or two) and the
goal's by the direction of the last push, but those errors point every way across episodes: a
localizer that can only map image positions to the table, trained on thousands of such frames,
averages them out (measured: median error 0.3-0.8 cm against the simulator's truth from labels
off by 1-3 cm). Pure numpy: the tool positions come from forward kinematics of the recorded joint
states (:func:`tool_positions`, vla_core.kinematics on the robot description the bag recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_core.config import Config, param
from vla_core.kinematics import KinematicTree

__all__ = [
    'SCENE_LABEL_NAMES',
    'HindsightConfig',
    'hindsight_scene_labels',
    'tool_positions',
]

# Same layout as the simulator's privileged scene state, so a localizer learns either.
SCENE_LABEL_NAMES = ('object.x', 'object.y', 'goal.x', 'goal.y')
# [m] travel over the direction window below which the tool counts as standing still.
_STILL_M = 1e-4


@dataclass(frozen=True, kw_only=True)
class HindsightConfig(Config):
    tool_link: str = param('ee_link', description='URDF link of the tool centre point')
    contact_height_m: float = param(
        0.032, description='tool centre below this height (world z) may be pushing [m]',
        range=(0.0, 1.0),
    )  # fmt: skip
    contact_offset_m: float = param(
        0.034, description='object centre ahead of the tool centre while pushing: half the '
        "object's size plus the tool's radius [m]", range=(0.0, 0.5),
    )  # fmt: skip
    approach_gap_m: float = param(
        0.02, description='tool travel at contact height before it touches the object [m]',
        range=(0.0, 0.5),
    )  # fmt: skip
    min_push_s: float = param(
        0.25, description='shorter stretches at contact height are not pushes [s]',
        range=(0.0, 10.0),
    )  # fmt: skip
    goal_overshoot_m: float = param(
        0.05, description='goal centre beyond where the object ended, along its travel: the '
        'goal region radius when episodes end on entering it, 0 when pushed to the centre [m]',
        range=(0.0, 1.0),
    )  # fmt: skip
    direction_frames: int = param(
        3, description='frames either side over which the direction of travel is taken',
        range=(1, 100),
    )  # fmt: skip


def tool_positions(
    tree: KinematicTree, joint_names: Sequence[str], states: np.ndarray, tool_link: str
) -> np.ndarray:
    """World positions ``(G, 3)`` of ``tool_link`` for joint states ``(G, D)`` in
    ``joint_names`` order (joints the tree does not have are ignored)."""
    known = set(tree.actuated_joints)
    columns = [(i, n) for i, n in enumerate(joint_names) if n in known]
    out = np.empty((len(states), 3))
    for k, row in enumerate(np.asarray(states, dtype=np.float64)):
        pose = tree.link_pose(tool_link, {n: float(row[i]) for i, n in columns})
        out[k] = pose[:3, 3]
    return out


def _pushes(low: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """Inclusive frame ranges of the runs of ``low`` at least ``min_frames`` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], low.astype(np.int8), [0]])))
    runs = zip(edges[::2], edges[1::2] - 1, strict=True)
    return [(int(a), int(b)) for a, b in runs if b - a + 1 >= min_frames]


def hindsight_scene_labels(
    tool: np.ndarray, fps: float, success: bool, config: HindsightConfig | None = None
) -> np.ndarray | None:
    """``(G, 4)`` float32 labels (:data:`SCENE_LABEL_NAMES`, metres) for one episode from the
    tool's world positions ``(G, 3)`` at ``fps``; None when the episode holds no push, or did
    not succeed (the goal is where a successful push ended)."""
    cfg = config or HindsightConfig()
    tool = np.asarray(tool, dtype=np.float64)
    n = len(tool)
    if not success or n == 0:
        return None
    k = cfg.direction_frames
    idx = np.arange(n)
    travel = tool[np.minimum(idx + k, n - 1), :2] - tool[np.maximum(idx - k, 0), :2]
    norm = np.linalg.norm(travel, axis=1, keepdims=True)
    direction = np.divide(travel, norm, out=np.zeros_like(travel), where=norm > _STILL_M)
    # A tool that stops keeps pushing the way it went (the object stays ahead of it).
    moving = np.flatnonzero(norm[:, 0] > _STILL_M)
    if len(moving):
        last = moving[np.maximum(np.searchsorted(moving, idx, side='right') - 1, 0)]
        direction = direction[last]
    ahead = tool[:, :2] + cfg.contact_offset_m * direction

    obj = np.full((n, 2), np.nan)
    contacts: list[tuple[int, int]] = []
    min_frames = max(1, round(cfg.min_push_s * fps))
    for start, end in _pushes(tool[:, 2] < cfg.contact_height_m, min_frames):
        step = np.linalg.norm(np.diff(tool[start : end + 1, :2], axis=0), axis=1)
        reached = np.flatnonzero(np.concatenate([[0.0], np.cumsum(step)]) >= cfg.approach_gap_m)
        if len(reached):
            touch = start + int(reached[0])
            obj[touch : end + 1] = ahead[touch : end + 1]
            contacts.append((touch, end))
    if not contacts:
        return None
    # At rest between pushes: where the next push meets the object; after the last, where it
    # left it.
    resting = contacts[-1][1]
    for touch, end in reversed(contacts):
        obj[end + 1 : resting + 1] = obj[resting]
        resting = touch
    obj[: contacts[0][0]] = obj[contacts[0][0]]
    obj[contacts[-1][1] + 1 :] = obj[contacts[-1][1]]

    final = obj[-1]
    overall = final - obj[contacts[-1][0]]
    length = float(np.linalg.norm(overall))
    goal = final + (cfg.goal_overshoot_m * overall / length if length > 1e-9 else 0.0)
    return np.concatenate([obj, np.broadcast_to(goal, (n, 2))], axis=1).astype(np.float32)
