"""vla_viz.scene and vla_viz.markers: paths through forward kinematics, history, text, markers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from visualization_msgs.msg import Marker

from vla_core.chunk import ActionChunk
from vla_description import urdf_path
from vla_ros_common.conversions import stamp_to_seconds
from vla_viz.markers import MarkerStyle, marker_array
from vla_viz.scene import ArmModel, EpisodeInfo, PathHistory, VizConfig, VizState, link_visuals

URDF = urdf_path('vla_tabletop').read_text()
JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')


def _chunk(stamp: float, seed: int = 0, horizon: int = 8, names=JOINTS) -> ActionChunk:
    rng = np.random.default_rng(seed)
    targets = rng.uniform(-1.0, 1.0, (horizon, len(names)))
    return ActionChunk(stamp, 0.1, tuple(names), targets, source='policy', sequence=seed)


def _state(**config) -> VizState:
    state = VizState(VizConfig(**config))
    state.set_model(URDF)
    return state


def test_chunk_path_is_the_ee_link_through_forward_kinematics_at_the_target_times():
    state = _state()
    chunk = _chunk(5.0)
    path = state.on_chunk('policy', chunk)
    tree = state.model.tree
    expected = [
        tree.forward(dict(zip(JOINTS, row, strict=True)))['ee_link'][:3, 3] for row in chunk.targets
    ]
    np.testing.assert_allclose(path.points, expected, atol=1e-12)
    np.testing.assert_allclose(path.times, 5.0 + 0.1 * np.arange(8))
    # The same targets with the columns in another order: the same path.
    order = list(reversed(JOINTS))
    shuffled = ActionChunk(5.0, 0.1, tuple(order), chunk.targets[:, ::-1])
    np.testing.assert_allclose(state.on_chunk('expert', shuffled).points, path.points)


def test_joint1_turns_the_path_about_the_vertical_axis():
    """An oracle independent of the FK code: joint1 is the base yaw (z axis through the origin)."""
    model = ArmModel(URDF)
    q = dict(zip(JOINTS, [0.0, 0.4, -0.3, 0.2, 0.5, 0.1, 0.02], strict=True))
    p0 = model.ee_point(q)
    p1 = model.ee_point({**q, 'joint1': math.pi / 2})
    np.testing.assert_allclose(p1, [-p0[1], p0[0], p0[2]], atol=1e-12)
    assert model.root == 'world' and np.linalg.norm(p0[:2]) > 0.1


def test_unknown_ee_link_is_refused():
    with pytest.raises(ValueError, match="no link 'tool0'"):
        ArmModel(URDF, 'tool0')


def test_history_keeps_a_window_spaced_points_and_restarts_when_time_goes_back():
    h = PathHistory(window=1.0, min_interval=0.1, max_points=100)
    assert [h.add(t, np.full(3, t)) for t in (0.0, 0.05, 0.1, 0.3)] == [True, False, True, True]
    for t in np.arange(0.4, 2.01, 0.1):
        h.add(float(t), np.full(3, t))
    assert h.times[0] >= 1.0 - 1e-9 and h.times[-1] == pytest.approx(2.0)
    np.testing.assert_allclose(h.points[:, 0], h.times)
    h.add(0.5, np.zeros(3))  # a restarted simulator
    assert len(h) == 1 and h.times[0] == 0.5
    small = PathHistory(window=100.0, min_interval=0.0, max_points=3)
    for t in range(5):
        small.add(float(t), np.zeros(3))
    assert list(small.times) == [2.0, 3.0, 4.0]


def test_executed_path_is_the_forward_kinematics_of_joint_states():
    state = _state(history_min_interval=0.0)
    rng = np.random.default_rng(1)
    qs = rng.uniform(-1, 1, (5, 7))
    for i, q in enumerate(qs):
        assert state.on_joint_state(1.0 + 0.01 * i, JOINTS, q)
    expected = [state.model.ee_point(dict(zip(JOINTS, q, strict=True))) for q in qs]
    np.testing.assert_allclose(state.executed.points, expected)
    # A NaN keeps that joint's last value rather than drawing nonsense.
    state.on_joint_state(1.1, JOINTS, [math.nan, *qs[-1][1:]])
    np.testing.assert_allclose(state.executed.points[-1], expected[-1])


def test_new_episode_starts_a_new_executed_path_and_stale_chunks_leave():
    state = _state(history_min_interval=0.0, chunk_stale_s=0.5)
    state.on_chunk('policy', _chunk(1.0))  # targets until 1.7
    state.on_episode(EpisodeInfo(1.0, 0, 3, 'push_red', 'push the red block'))
    for t in (1.0, 1.1):
        state.on_joint_state(t, JOINTS, np.zeros(7))
    state.on_episode(EpisodeInfo(1.0, 0, 3, 'push_red', 'push the red block'))  # again
    assert len(state.executed) == 2
    state.on_episode(EpisodeInfo(1.2, 1, 3, 'push_red', 'push the red block', 0.2))
    assert len(state.executed) == 2  # succeeded: the path stays
    state.on_episode(EpisodeInfo(1.3, 0, 4, 'push_blue', 'push the blue block'))
    assert len(state.executed) == 0
    assert state.chunk_paths()['policy'] is not None and state.chunk_paths()['expert'] is None
    state.on_joint_state(2.21, JOINTS, np.zeros(7))  # 1.7 + 0.5 passed
    assert state.chunk_paths()['policy'] is None


def test_without_a_description_inputs_are_ignored():
    state = VizState()
    assert state.on_chunk('policy', _chunk(0.0)) is None
    assert not state.on_joint_state(0.0, JOINTS, np.zeros(7))
    assert marker_array(state, MarkerStyle()).markers == []


def test_episode_text():
    state = VizState()
    assert state.text() == 'no episode status'
    state.on_episode(EpisodeInfo(0.0, 2, 7, 'push_green', 'push the green block', 25.04))
    assert state.text() == 'episode 7 · push_green · timed out after 25.0 s\n"push the green block"'
    state.on_instruction('put it back')  # the instruction topic wins over the status' copy
    assert state.text().endswith('\n"put it back"')


def test_link_visuals_of_the_urdf():
    visuals = link_visuals(URDF)
    assert len(visuals) == URDF.count('<visual')
    base = [v for v in visuals if v.link == 'base_link']
    assert base[0].shape == 'cylinder' and base[0].size == (0.08, 0.05)
    assert base[0].rgba == (0.25, 0.25, 0.28, 1.0)  # the named material 'dark'
    np.testing.assert_allclose(base[0].origin[:3, 3], [0, 0, 0.025])
    palm = next(v for v in visuals if v.link == 'link6' and v.shape == 'box')
    assert palm.size == (0.04, 0.09, 0.024)
    forearm = next(v for v in visuals if v.link == 'link3' and v.shape == 'cylinder')
    np.testing.assert_allclose(forearm.origin[:3, 2], [1, 0, 0], atol=1e-12)  # along x


def _by_ns(markers) -> dict[tuple[str, int], Marker]:
    return {(m.ns, m.id): m for m in markers}


def test_marker_array_carries_the_paths_stamps_and_text():
    state = _state(history_min_interval=0.0)
    state.on_episode(EpisodeInfo(1.5, 0, 2, 'push_red', 'push the red block'))
    policy = state.on_chunk('policy', _chunk(2.0, seed=1))
    for t in (2.0, 2.05, 2.1):
        state.on_joint_state(t, JOINTS, np.full(7, t - 2.0))
    markers = _by_ns(marker_array(state, MarkerStyle(frame_prefix='r/')).markers)
    line, spheres = markers[('policy_chunk', 0)], markers[('policy_chunk', 1)]
    assert (line.type, spheres.type) == (Marker.LINE_STRIP, Marker.SPHERE_LIST)
    assert line.header.frame_id == 'r/world' and line.action == Marker.ADD
    assert stamp_to_seconds(line.header.stamp) == pytest.approx(2.0)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in line.points], policy.points)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in spheres.points], policy.points)
    # No expert chunk yet: its markers are deleted, not left from an earlier picture.
    assert markers[('expert_chunk', 0)].action == Marker.DELETE
    executed = markers[('executed', 0)]
    assert stamp_to_seconds(executed.header.stamp) == pytest.approx(2.1)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in executed.points], state.executed.points)
    text = markers[('episode', 0)]
    assert text.type == Marker.TEXT_VIEW_FACING and 'push the red block' in text.text
    assert stamp_to_seconds(text.header.stamp) == pytest.approx(1.5)
    assert text.pose.position.z == pytest.approx(0.85)
