import math

import numpy as np
import pytest

from vla_core.robot import (
    CameraIntrinsics,
    CommandError,
    JointCommand,
    JointLimits,
    JointStateSample,
    Pose,
    RobotInterface,
    validate_command,
)

NAMES = ('a', 'b', 'c')


class FakeRobot(RobotInterface):
    """Minimal driver recording what reaches the actuators."""

    def __init__(self, mode: str = 'position') -> None:
        self._mode = mode
        self._connected = False
        self.applied: list[np.ndarray] = []
        self._limits = JointLimits(
            joint_names=NAMES,
            position_lower=[-1.0, -2.0, 0.0],
            position_upper=[1.0, 2.0, 0.04],
            velocity=[1.0, 1.0, 0.1],
            effort=[10.0, 10.0, 5.0],
        )

    joint_names = property(lambda self: NAMES)
    limits = property(lambda self: self._limits)
    actuation_mode = property(lambda self: self._mode)
    is_connected = property(lambda self: self._connected)

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def now(self) -> float:
        return 1.0

    def read_state(self) -> JointStateSample:
        return JointStateSample(1.0, NAMES, np.zeros(3), np.zeros(3), np.zeros(3))

    def _apply(self, values: np.ndarray, stamp: float) -> None:
        self.applied.append(values)


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_non_finite_command_rejected(bad: float) -> None:
    with pytest.raises(CommandError, match='NaN or Inf'):
        JointCommand('position', [0.0, bad, 0.0])


def test_command_shape_and_names_checked() -> None:
    with pytest.raises(CommandError, match='3 joint names but 2 values'):
        JointCommand('position', [0.0, 0.0], NAMES)
    with pytest.raises(CommandError, match='duplicate'):
        JointCommand('position', [0.0, 0.0], ('a', 'a'))
    with pytest.raises(CommandError, match='flat list'):
        JointCommand('position', [[0.0, 0.0]])
    with pytest.raises(CommandError, match='unknown actuation mode'):
        JointCommand('torque', [0.0])
    with pytest.raises(CommandError, match='not numbers'):
        JointCommand('position', ['x', 1.0])


def test_validate_reorders_by_name() -> None:
    cmd = JointCommand('position', [3.0, 1.0, 2.0], ('c', 'a', 'b'))
    np.testing.assert_array_equal(validate_command(cmd, NAMES, 'position'), [1.0, 2.0, 3.0])


def test_validate_rejects_wrong_length_unknown_missing_and_mode() -> None:
    with pytest.raises(CommandError, match='2 values, the robot has 3 joints'):
        validate_command(JointCommand('position', [0.0, 0.0]), NAMES, 'position')
    with pytest.raises(CommandError, match=r"unknown joint names \['z'\]"):
        validate_command(JointCommand('position', [0, 0, 0], ('a', 'b', 'z')), NAMES, 'position')
    with pytest.raises(CommandError, match=r"missing joints \['c'\]"):
        validate_command(JointCommand('position', [0, 0], ('a', 'b')), NAMES, 'position')
    with pytest.raises(CommandError, match="robot is in 'position' mode"):
        validate_command(JointCommand('velocity', [0, 0, 0]), NAMES, 'position')


def test_send_command_clips_and_reports_applied() -> None:
    robot = FakeRobot()
    with robot:
        applied = robot.send_command(JointCommand('position', [5.0, -3.0, 0.02], stamp=0.5))
    np.testing.assert_array_equal(applied.values, [1.0, -2.0, 0.02])
    assert applied.joint_names == NAMES and applied.stamp == 0.5
    np.testing.assert_array_equal(robot.applied[-1], [1.0, -2.0, 0.02])


@pytest.mark.parametrize(
    ('mode', 'values', 'expected'),
    [('velocity', [2.0, -0.5, 1.0], [1.0, -0.5, 0.1]), ('effort', [-20, 3, 9], [-10, 3, 5])],
)
def test_clip_per_mode(mode: str, values: list[float], expected: list[float]) -> None:
    robot = FakeRobot(mode)
    robot.connect()
    np.testing.assert_array_equal(robot.send_command(JointCommand(mode, values)).values, expected)


def test_rejected_command_never_reaches_the_driver() -> None:
    robot = FakeRobot()
    with pytest.raises(CommandError, match='not connected'):
        robot.send_command(JointCommand('position', [0.0, 0.0, 0.0]))
    robot.connect()
    for cmd in (
        JointCommand('position', [0.0, 0.0]),
        JointCommand('position', [0, 0, 0], ('a', 'b', 'x')),
        JointCommand('effort', [0, 0, 0]),
    ):
        with pytest.raises(CommandError):
            robot.send_command(cmd)
    assert robot.applied == []


def test_limits_validated() -> None:
    with pytest.raises(ValueError):
        JointLimits(('a',), [1.0], [0.0], [1.0], [1.0])
    with pytest.raises(ValueError):
        JointLimits(('a',), [0.0], [1.0], [0.0], [1.0])


def _rot_z(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def test_pose_matrix_roundtrip_compose_and_inverse() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        a = Pose(rng.normal(size=3), q)
        b = Pose.from_matrix(a.position, a.rotation)
        np.testing.assert_allclose(b.quat_wxyz, a.quat_wxyz, atol=1e-12)
        c = Pose(rng.normal(size=3), rng.normal(size=4))
        np.testing.assert_allclose((a * c).matrix, a.matrix @ c.matrix, atol=1e-12)
        np.testing.assert_allclose((a.inverse() * a).matrix, np.eye(4), atol=1e-12)
    p = Pose.from_matrix([1, 2, 3], _rot_z(math.pi / 2))
    np.testing.assert_allclose(p.quat_xyzw, [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(p.transform_points([1, 0, 0]), [1, 3, 3], atol=1e-12)


def test_camera_intrinsics_projection() -> None:
    k = CameraIntrinsics(width=640, height=480, fx=500.0, fy=500.0, cx=319.5, cy=239.5)
    np.testing.assert_allclose(
        k.project([[0, 0, 2], [0.2, -0.1, 1]]), [[319.5, 239.5], [419.5, 189.5]]
    )
    assert k.p.shape == (3, 4) and k.k[0, 2] == 319.5
    with pytest.raises(ValueError):
        k.project([0, 0, -1])
