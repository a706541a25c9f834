"""The browser view (rerun-sdk, optional): what it records, where it listens, and what headless
Chromium shows of it. Skipped where rerun-sdk (or, for the screenshot, chromium) is absent."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest

rr = pytest.importorskip('rerun')

from vla_core.chunk import ActionChunk  # noqa: E402
from vla_description import urdf_path  # noqa: E402
from vla_viz.browser import chromium_binary, screenshots  # noqa: E402
from vla_viz.scene import EpisodeInfo, VizConfig, VizState, link_visuals  # noqa: E402
from vla_viz.web_view import RerunScene, RerunServer, RerunServerError, rerun_binary  # noqa: E402

JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')
CAMERAS = ('scene_camera', 'wrist_camera')
RED, BLUE = (230, 20, 20), (20, 40, 230)  # the two synthetic camera images


def _populate(scene: RerunScene) -> None:
    """A short episode: the arm moving, both chunks, both cameras, the episode text."""
    state = VizState(VizConfig(history_min_interval=0.0))
    state.set_model(urdf_path('vla_tabletop').read_text())
    scene.set_robot(state.model)
    state.on_episode(EpisodeInfo(0.0, 0, 3, 'push_red', 'push the red block to the target'))
    q0 = np.array([0.0, 0.2, 0.1, 0.0, 0.3, 0.0, 0.02])
    t = 0.0
    for i in range(30):
        t = 0.05 * i
        state.on_joint_state(t, JOINTS, q0 + np.array([0.3 * np.sin(t), 0.1 * t, 0, 0, 0, 0, 0]))
        scene.log_arm(t, state.joint_positions)
    scene.log_executed(t, state.executed.points)
    q = np.array([state.joint_positions[n] for n in JOINTS])
    ramp = np.linspace(0.0, 1.0, 16)[:, None]
    for role, delta in (('policy', [0.6, 0.3, 0.3, 0, 0, 0, 0]),
                        ('expert', [-0.6, 0.1, 0.4, 0, 0, 0, 0])):  # fmt: skip
        path = state.on_chunk(role, ActionChunk(t, 0.1, JOINTS, q + ramp * np.array(delta)))
        scene.log_chunk(path, role, t)
    scene.log_text(t, state.text())
    for camera, color, size in (('scene_camera', RED, 224), ('wrist_camera', BLUE, 128)):
        image = np.empty((size, size, 3), np.uint8)
        image[...] = color
        scene.log_image(camera, t, image)


def test_recording_holds_the_arm_chunks_paths_cameras_plots_and_text(tmp_path):
    rec = rr.RecordingStream('vla_view_test')
    rec.save(tmp_path / 'view.rrd')
    scene = RerunScene(rec, CAMERAS)
    _populate(scene)
    rec.flush()
    rec.disconnect()
    printed = subprocess.run(
        [rerun_binary(), 'rrd', 'print', str(tmp_path / 'view.rrd')],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    entities = {}
    for line in printed.splitlines():
        if ' - /' in line and 'data columns' in line:
            entity, columns = line.split(' - ')[1], line.split('data columns: ')[1]
            entities.setdefault(entity, set()).update(columns.strip('[]').split())
    # Every visual of the URDF as a solid primitive, each link moving by a transform.
    expected = link_visuals(urdf_path('vla_tabletop').read_text())
    shapes = {'box': 'Boxes3D', 'cylinder': 'Cylinders3D', 'sphere': 'Ellipsoids3D'}
    for i, v in enumerate(expected):
        columns = entities[f'/world/robot/{v.link}/visual_{i}']
        assert any(c.startswith(shapes[v.shape]) for c in columns), (v.link, v.shape)
    assert any(c.startswith('Transform3D') for c in entities['/world/robot/link3'])
    for role in ('policy', 'expert'):
        assert 'LineStrips3D:strips' in entities[f'/world/chunks/{role}/path']
        assert 'Points3D:positions' in entities[f'/world/chunks/{role}/targets']
    assert 'LineStrips3D:strips' in entities['/world/executed']
    for camera in CAMERAS:
        assert 'Image:buffer' in entities[f'/camera/{camera}']
    assert 'Scalars:scalars' in entities['/joints']
    assert 'TextDocument:text' in entities['/episode']


@pytest.mark.parametrize(('bind', 'expected'), [('127.0.0.1', '127.0.0.1'), ('0.0.0.0', '0.0.0.0')])
def test_server_listens_on_localhost_unless_told_otherwise(bind, expected, ports, listening):
    grpc_port, web_port = ports(), ports()
    server = RerunServer(bind, grpc_port, web_port, memory_limit='64MB')
    try:
        assert listening(grpc_port) == {expected}
        assert listening(web_port) == {expected}
        assert f':{web_port}/?url=rerun%2Bhttp' in server.url
    finally:
        server.stop()
    assert server.process.poll() is not None


def _fraction(region: np.ndarray, color: tuple[int, int, int], tol: int = 30) -> float:
    return float(np.mean(np.all(np.abs(region.astype(int) - color) <= tol, axis=-1)))


@pytest.mark.skipif(chromium_binary() is None, reason='no chromium (apt-get install chromium)')
def test_headless_chromium_shows_the_arm_both_cameras_and_the_chunks(tmp_path, ports):
    """Rerun's web viewer renders with software WebGL (SwiftShader): the layout puts the cameras
    in the right column and the 3D view top left, so each must show what was logged there."""
    from PIL import Image

    server = RerunServer('127.0.0.1', ports(), ports(), memory_limit='64MB')
    rec = rr.RecordingStream('vla_view_test')
    try:
        scene = RerunScene(rec, CAMERAS)
        rec.connect_grpc(server.grpc_url, default_blueprint=scene.blueprint())
        _populate(scene)
        rec.flush()
        checks: dict[str, bool] = {}
        png = b''
        for png in screenshots(server.url, size=(1600, 1000), period=5.0, timeout=240.0):
            px = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
            h, w, _ = px.shape
            view3d = px[int(0.05 * h) : int(0.58 * h), : int(0.58 * w)]
            grey = np.abs(view3d.astype(int) - view3d.mean(axis=-1, keepdims=True)).max(-1) < 12
            lum = view3d.mean(axis=-1)
            checks = {
                'scene camera (right, top)': _fraction(
                    px[int(0.06 * h):int(0.40 * h), int(0.62 * w):], RED) > 0.3,
                'wrist camera (right, middle)': _fraction(
                    px[int(0.44 * h):int(0.77 * h), int(0.62 * w):], BLUE) > 0.3,
                'arm (3D, grey shapes)': float(np.mean(grey & (lum > 60) & (lum < 225))) > 0.01,
                'policy chunk (3D, blue)': _fraction(view3d, (38, 115, 255), 45) > 2e-4,
                'expert chunk (3D, orange)': _fraction(view3d, (255, 140, 26), 45) > 2e-4,
            }  # fmt: skip
            if all(checks.values()):
                break
        (tmp_path / 'web_view.png').write_bytes(png)
        target = os.environ.get('VLA_VIEW_SCREENSHOT')  # where docs/images' copy comes from
        if target:
            shutil.copy(tmp_path / 'web_view.png', target)
        assert all(checks.values()), f'not shown: {[k for k, v in checks.items() if not v]}'
    finally:
        rec.disconnect()
        server.stop()


def test_a_taken_port_is_refused_with_the_reason(ports):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RerunServerError, match=f'port {port} is in use'):
            RerunServer('127.0.0.1', ports(), port)
