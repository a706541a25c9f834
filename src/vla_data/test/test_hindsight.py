"""Hindsight scene labels from the tool's path: pushes found at contact height, the object at rest
until touched, carried ahead of the tool while pushed, the goal beyond where it ended."""

from __future__ import annotations

import numpy as np
import pytest

from vla_data.dataset.hindsight import HindsightConfig, hindsight_scene_labels, tool_positions

FPS = 20.0
CFG = HindsightConfig(goal_overshoot_m=0.05, approach_gap_m=0.02, contact_offset_m=0.03)


def _segment(a, b, frames: int) -> np.ndarray:
    return np.linspace(a, b, frames, endpoint=False)


def _push_path(start_xy, end_xy, high: float = 0.15, low: float = 0.02) -> np.ndarray:
    """Above the start, down to contact height, then straight to the end (held 5 frames)."""
    s, e = np.asarray(start_xy, float), np.asarray(end_xy, float)
    return np.concatenate([
        _segment([*s - [0.1, 0.0], high], [*s, high], 10),
        _segment([*s, high], [*s, low], 10),
        _segment([*s, low], [*e, low], 40),
        np.repeat([[*e, low]], 5, axis=0),
    ])  # fmt: skip


def test_object_rests_until_touched_then_rides_ahead_of_the_tool_and_the_goal_lies_beyond():
    tool = _push_path([0.40, 0.0], [0.50, 0.0])  # 0.25 cm per frame along +x
    labels = hindsight_scene_labels(tool, FPS, True, CFG)
    assert labels is not None and labels.shape == (len(tool), 4)
    # Touch after 2 cm at contact height: the object's resting place is 2 + 3 cm past the start.
    np.testing.assert_allclose(labels[:20, :2], [[0.45, 0.0]] * 20, atol=1e-6)
    pushing = slice(30, 55)
    np.testing.assert_allclose(labels[pushing, 0], tool[pushing, 0] + 0.03, atol=1e-6)
    np.testing.assert_allclose(labels[pushing, 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(labels[-1, :2], [0.53, 0.0], atol=1e-3)  # resting where left
    np.testing.assert_allclose(labels[:, 2:], [[0.58, 0.0]] * len(tool), atol=1e-3)


def test_a_slip_between_pushes_is_labelled_where_the_second_push_meets_the_object():
    first = _push_path([0.40, 0.0], [0.45, 0.0])
    second = _push_path([0.45, 0.05], [0.45, 0.15])  # re-approach from the side, push along +y
    tool = np.concatenate([first, second])
    labels = hindsight_scene_labels(tool, FPS, True, CFG)
    assert labels is not None
    between = slice(len(first), len(first) + 20)  # lifted and moving: no push
    np.testing.assert_allclose(labels[between, :2], [[0.45, 0.10]] * 20, atol=1e-6)
    np.testing.assert_allclose(labels[0, :2], [0.45, 0.0], atol=1e-6)
    # The goal lies beyond the last push's travel (+y), not the first's.
    np.testing.assert_allclose(labels[0, 2:], [0.45, 0.18 + 0.05], atol=2e-3)


@pytest.mark.parametrize('success', [False, True])
def test_no_label_without_success_or_without_a_push(success):
    path = _push_path([0.40, 0.0], [0.50, 0.0])
    if success:
        path[:, 2] = 0.2  # never low: no push
    assert hindsight_scene_labels(path, FPS, success, CFG) is None


def test_tool_positions_are_forward_kinematics_of_the_named_joints():
    from vla_core.kinematics import KinematicTree

    urdf = """<robot name="r">
      <link name="base"/><link name="arm"/><link name="tool"/>
      <joint name="j" type="prismatic"><parent link="base"/><child link="arm"/>
        <axis xyz="1 0 0"/><limit lower="-1" upper="1" effort="1" velocity="1"/></joint>
      <joint name="fixed" type="fixed"><parent link="arm"/><child link="tool"/>
        <origin xyz="0 0 0.5"/></joint>
    </robot>"""
    tree = KinematicTree.from_urdf(urdf)
    states = np.array([[0.1, 9.0], [0.3, 9.0]])  # a joint the tree lacks is ignored
    out = tool_positions(tree, ['j', 'gripper'], states, 'tool')
    np.testing.assert_allclose(out, [[0.1, 0.0, 0.5], [0.3, 0.0, 0.5]], atol=1e-12)
