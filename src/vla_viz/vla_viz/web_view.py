"""The browser view's drawing and serving with rerun-sdk (an optional dependency), no rclpy.

:class:`RerunServer` runs rerun's own server as a child process (``rerun --serve-web``): a gRPC
proxy that buffers the recording up to a memory limit and the web viewer over HTTP, both bound to
``bind`` (127.0.0.1 by default: this machine only; 0.0.0.0 serves other machines). It needs no
network: the viewer is bundled in the wheel.

:class:`RerunScene` logs what :mod:`vla_viz.scene` computes, on the ``ros_time`` timeline (message
stamps): the arm (the URDF's boxes, cylinders and spheres on link poses from forward kinematics),
the policy's and the expert's chunk paths, the executed path, joint positions as plots, the camera
images and the episode text (the timeline shows dates for wall-clock stamps, durations for a clock
that starts at 0), laid out by :meth:`RerunScene.blueprint`::

    +------------------------------+------------------+
    | world: arm + paths (3D)      | camera 1         |
    |                              +------------------+
    +------------------------------+ camera 2         |
    | joints (plots)               +------------------+
    |                              | episode (text)   |
    +------------------------------+------------------+
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import contextlib
import ctypes
import os
from pathlib import Path
import signal
import socket
import subprocess
import tempfile
import time

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from vla_viz.markers import COLORS
from vla_viz.scene import ROLES, ArmModel, ChunkPath, link_visuals

__all__ = ['RerunScene', 'RerunServer', 'RerunServerError', 'rerun_binary', 'viewer_url']

TIMELINE = 'ros_time'
# Stamps past this are wall-clock (epoch) times, shown as dates; below it, a clock from 0 (a bag or
# a simulator that starts at 0), shown as durations.
_EPOCH_STAMPS = 1e8
LAYOUT_COLUMN_SHARES = (3, 2)  # 3D + plots | cameras + text
LAYOUT_RIGHT_ROW_SHARES = (2, 2, 1)  # camera, camera, episode text
LAYOUT_LEFT_ROW_SHARES = (3, 2)  # 3D, plots


class RerunServerError(RuntimeError):
    """The rerun server did not start (binary missing, port taken); the message says which."""


def _rgba8(rgba: Sequence[float]) -> list[int]:
    return [round(255 * c) for c in rgba]


def rerun_binary() -> str:
    override = os.environ.get('RERUN_CLI_PATH')
    if override:
        return override
    import rerun_cli

    return str(Path(rerun_cli.__file__).resolve().parent / 'rerun')


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, so a killed view leaves no server behind."""
    with contextlib.suppress(OSError):
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def viewer_url(host: str, web_port: int, grpc_port: int) -> str:
    """What a browser opens: the web viewer, told where the recording is."""
    return f'http://{host}:{web_port}/?url=rerun%2Bhttp%3A%2F%2F{host}%3A{grpc_port}%2Fproxy'


class RerunServer:
    """``rerun --serve-web`` bound to ``bind`` on ``grpc_port`` (data) and ``web_port`` (viewer)."""

    def __init__(
        self, bind: str = '127.0.0.1', grpc_port: int = 9876, web_port: int = 9090,
        memory_limit: str = '512MB', startup_timeout: float = 20.0,
    ) -> None:  # fmt: skip
        self.bind, self.grpc_port, self.web_port = bind, grpc_port, web_port
        host = '127.0.0.1' if bind in ('127.0.0.1', 'localhost') else bind
        self._connect_host = '127.0.0.1' if host in ('0.0.0.0', '::') else host
        # The address other machines use when serving them: this host's name.
        self.public_host = socket.gethostname() if host in ('0.0.0.0', '::') else host
        for port in (grpc_port, web_port):
            if self._in_use(port):
                raise RerunServerError(f'port {port} is in use (another view?); choose another')
        cmd = [
            rerun_binary(), '--serve-web', '--bind', bind, '--port', str(grpc_port),
            '--web-viewer-port', str(web_port), '--server-memory-limit', memory_limit,
            '--hide-welcome-screen',
        ]  # fmt: skip
        # Its log goes to a file, not a pipe: nobody reads a pipe once it runs, and a full or closed
        # one would stall or break the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (open while the server runs)
        try:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=self._log, preexec_fn=_die_with_parent
            )
        except OSError as err:
            self._log.close()
            raise RerunServerError(f'cannot start {cmd[0]}: {err}') from None
        deadline = time.monotonic() + startup_timeout
        while not (self._in_use(grpc_port) and self._in_use(web_port)):
            if self.process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors='replace').strip()
                self._log.close()
                raise RerunServerError(f'rerun exited ({self.process.returncode}): {err[-300:]}')
            if time.monotonic() > deadline:
                self.stop()
                raise RerunServerError(f'rerun did not listen within {startup_timeout:g} s')
            time.sleep(0.1)

    def _in_use(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex((self._connect_host, port)) == 0

    @property
    def grpc_url(self) -> str:
        return f'rerun+http://{self._connect_host}:{self.grpc_port}/proxy'

    @property
    def url(self) -> str:
        return viewer_url(self.public_host, self.web_port, self.grpc_port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class RerunScene:
    """Logs the scene to one rerun recording (``recording``: a stream connected to a server, or
    saving to a file). Times are seconds of the robot's clock on the ``ros_time`` timeline."""

    def __init__(self, recording: rr.RecordingStream, cameras: Sequence[str] = ()) -> None:
        self.rec = recording
        self.cameras = tuple(cameras)
        self.model: ArmModel | None = None
        self._shown: dict[str, bool] = dict.fromkeys(ROLES, False)
        self._text = ''
        self._joint_names: tuple[str, ...] = ()
        self._epoch: bool | None = None  # the timeline's kind, fixed by the first stamp

    def blueprint(self) -> rrb.Blueprint:
        cams = [rrb.Spatial2DView(origin=f'camera/{c}', name=c) for c in self.cameras]
        return rrb.Blueprint(
            rrb.Horizontal(
                rrb.Vertical(
                    rrb.Spatial3DView(
                        origin='world', name='arm and action chunks',
                        eye_controls=rrb.EyeControls3D(
                            position=[0.75, -0.65, 0.55], look_target=[0.25, 0.0, 0.2],
                            eye_up=[0.0, 0.0, 1.0], kind=rrb.Eye3DKind.Orbital,
                        ),
                    ),
                    rrb.TimeSeriesView(origin='joints', name='joint positions'),
                    row_shares=list(LAYOUT_LEFT_ROW_SHARES),
                ),
                rrb.Vertical(
                    *cams, rrb.TextDocumentView(origin='episode', name='episode'),
                    row_shares=list(LAYOUT_RIGHT_ROW_SHARES[-len(cams) - 1:]),
                ),
                column_shares=list(LAYOUT_COLUMN_SHARES),
            ),
            rrb.BlueprintPanel(state='collapsed'),
            rrb.SelectionPanel(state='collapsed'),
            rrb.TimePanel(state='collapsed'),
        )  # fmt: skip

    def _at(self, t: float) -> None:
        if self._epoch is None:
            self._epoch = t >= _EPOCH_STAMPS
        if self._epoch:
            self.rec.set_time(TIMELINE, timestamp=float(t))
        else:
            self.rec.set_time(TIMELINE, duration=float(t))

    def set_robot(self, model: ArmModel) -> None:
        """The arm's shapes, static under ``world/robot/<link>``; poses follow :meth:`log_arm`."""
        self.model = model
        rec = self.rec
        rec.log('world', rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        for i, v in enumerate(link_visuals(model.urdf)):
            path = f'world/robot/{v.link}/visual_{i}'
            rec.log(path, rr.Transform3D(translation=v.origin[:3, 3], mat3x3=v.origin[:3, :3]),
                    static=True)  # fmt: skip
            color = [_rgba8(v.rgba)]
            if v.shape == 'box':
                shape = rr.Boxes3D(sizes=[v.size], colors=color, fill_mode='solid')
            elif v.shape == 'cylinder':
                shape = rr.Cylinders3D(
                    radii=[v.size[0]], lengths=[v.size[1]], colors=color, fill_mode='solid'
                )
            else:
                shape = rr.Ellipsoids3D(half_sizes=[[v.size[0]] * 3], colors=color,
                                        fill_mode='solid')  # fmt: skip
            rec.log(path, shape, static=True)

    def log_arm(self, t: float, positions: Mapping[str, float]) -> None:
        """Link poses from joint positions, and the positions as plots (one series per joint)."""
        if self.model is None:
            return
        self._at(t)
        for link, pose in self.model.link_poses(positions).items():
            self.rec.log(
                f'world/robot/{link}', rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3])
            )
        names = tuple(n for n in positions if n in self.model.tree.joints)
        if names != self._joint_names:
            self._joint_names = names
            self.rec.log('joints', rr.SeriesLines(names=list(names)), static=True)
        self.rec.log('joints', rr.Scalars([positions[n] for n in names]))

    def log_chunk(self, path: ChunkPath | None, role: str, t: float) -> None:
        """A chunk's end-effector path at ``world/chunks/<role>``; None clears it (at ``t``)."""
        entity = f'world/chunks/{role}'
        if path is None:
            if self._shown[role]:
                self._at(t)
                self.rec.log(entity, rr.Clear(recursive=True))
                self._shown[role] = False
            return
        self._at(path.stamp)
        color = _rgba8(COLORS[role])
        self.rec.log(f'{entity}/path', rr.LineStrips3D([path.points], colors=[color], radii=0.005))
        labels = [f'{path.source or role} #{path.sequence}'] + [''] * (len(path.points) - 1)
        self.rec.log(
            f'{entity}/targets',
            rr.Points3D(path.points, colors=[color], radii=0.009, labels=labels),
        )
        self._shown[role] = True

    def log_executed(self, t: float, points: np.ndarray) -> None:
        if len(points) < 2:
            return
        self._at(t)
        color = _rgba8(COLORS['executed'])
        self.rec.log('world/executed', rr.LineStrips3D([points], colors=[color], radii=0.004))

    def log_text(self, t: float, text: str) -> None:
        if text == self._text:
            return
        self._text = text
        self._at(t)
        self.rec.log('episode', rr.TextDocument(text))

    def log_image(self, camera: str, t: float, image: np.ndarray, jpeg_quality: int = 0) -> None:
        """An RGB (H, W, 3) or mono (H, W) uint8 image; JPEG-compressed when ``jpeg_quality``."""
        self._at(t)
        img = rr.Image(image)
        self.rec.log(f'camera/{camera}', img.compress(jpeg_quality) if jpeg_quality else img)
