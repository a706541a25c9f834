import math

import numpy as np
import pytest

from vla_sim.config import SimConfig
from vla_sim.expert import IkSolver
from vla_sim.scene import MARKER_POS
from vla_sim.sim import HOME_QPOS, MujocoSim


def _marker_centroid(img: np.ndarray) -> np.ndarray:
    """Pixel centroid (u, v) of the magenta calibration marker."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    mask = (r > 180) & (b > 180) & (g < 90)
    assert mask.sum() >= 3, 'marker not visible'
    v, u = np.nonzero(mask)
    return np.array([u.mean(), v.mean()])


def _project(sim: MujocoSim, camera: str, point: np.ndarray) -> np.ndarray:
    optical = sim.camera_pose(camera).inverse().transform_points(point)
    assert optical[2] > 0.0, 'optical z points forward'
    return sim.camera_intrinsics(camera).project(optical)[0]


@pytest.mark.parametrize(('width', 'height', 'fovy'), [(224, 224, 45.0), (320, 240, 60.0)])
def test_scene_camera_projects_marker_within_2px(width: int, height: int, fovy: float) -> None:
    cfg = SimConfig(
        calibration_marker=True,
        scene_camera_width=width,
        scene_camera_height=height,
        scene_camera_fovy_deg=fovy,
    )
    sim = MujocoSim(cfg)
    sim.connect()
    img = sim.render('scene_camera')
    assert img.shape == (height, width, 3) and img.dtype == np.uint8
    k = sim.camera_intrinsics('scene_camera')
    assert (k.width, k.height) == (width, height)
    assert k.fy == pytest.approx(0.5 * height / math.tan(math.radians(fovy) / 2))
    assert k.cx == pytest.approx((width - 1) / 2) and k.cy == pytest.approx((height - 1) / 2)
    uv = _project(sim, 'scene_camera', np.array(MARKER_POS))
    assert np.linalg.norm(uv - _marker_centroid(img)) < 2.0
    sim.disconnect()


def test_wrist_camera_projects_marker_within_2px() -> None:
    sim = MujocoSim(SimConfig(calibration_marker=True))
    sim.connect()
    # Put the wrist camera (5.5 cm ahead of the tool) above the marker, 25 cm up.
    tool = np.array([MARKER_POS[0] - 0.07, MARKER_POS[1], 0.2])
    q = HOME_QPOS.copy()
    q[:6] = IkSolver(sim).seed(tool, math.atan2(tool[1], tool[0]))
    sim.set_joint_positions(q)
    img = sim.render('wrist_camera')
    assert img.shape == (128, 128, 3)
    uv = _project(sim, 'wrist_camera', np.array(MARKER_POS))
    assert np.linalg.norm(uv - _marker_centroid(img)) < 2.0
    sim.disconnect()


def test_camera_frames_follow_ros_conventions() -> None:
    sim = MujocoSim()
    optical = sim.camera_pose('scene_camera').rotation
    body = sim.camera_pose('scene_camera', optical=False).rotation
    # Body x (forward) is optical z; body y (left) is optical -x; body z (up) is optical -y.
    np.testing.assert_allclose(body[:, 0], optical[:, 2], atol=1e-12)
    np.testing.assert_allclose(body[:, 1], -optical[:, 0], atol=1e-12)
    np.testing.assert_allclose(body[:, 2], -optical[:, 1], atol=1e-12)
    # The scene camera looks down at the table and its image "down" points roughly down.
    assert optical[2, 2] < -0.3 and optical[2, 1] < 0.0


def test_unknown_camera_rejected() -> None:
    sim = MujocoSim()
    with pytest.raises(KeyError, match='unknown camera'):
        sim.render('top_camera')
