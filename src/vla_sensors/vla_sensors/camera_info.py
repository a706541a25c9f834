"""Camera calibration in the ROS ``camera_calibration_parsers`` YAML format, as plain dataclasses.

The file written by ``cameracalibrator`` (``ost.yaml``)::

    image_width: 640
    image_height: 480
    camera_name: wrist_camera
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', 0, 0, fy', cy', 0, 0, 0, 1, 0]}

:class:`CameraInfo` mirrors ``sensor_msgs/CameraInfo`` (``d``, ``k``, ``r``, ``p`` row-major) so the
node copies fields one to one. :meth:`CameraInfo.cropped_scaled` gives the intrinsics of the
policy-input image (crop, then resize).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    'CalibrationError',
    'CameraInfo',
    'dump_camera_info',
    'load_camera_info',
    'optical_frame_id',
    'parse_camera_info',
    'uncalibrated_camera_info',
]

# Number of distortion coefficients each model expects (image_geometry's models).
_DISTORTION_SIZES = {
    'plumb_bob': (5,),
    'rational_polynomial': (8,),
    'equidistant': (4,),
}
_IDENTITY3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the field."""


def optical_frame_id(camera_name: str) -> str:
    """REP 103 optical frame (z forward, x right, y down) of a camera."""
    return f'{camera_name}_optical_frame'


@dataclass(frozen=True)
class CameraInfo:
    width: int
    height: int
    camera_name: str = 'camera'
    distortion_model: str = 'plumb_bob'
    d: tuple[float, ...] = ()
    k: tuple[float, ...] = (0.0,) * 9
    r: tuple[float, ...] = (0.0,) * 9
    p: tuple[float, ...] = (0.0,) * 12
    # sensor_msgs/RegionOfInterest of the raw sensor this image covers (0s: the full image).
    roi_x_offset: int = 0
    roi_y_offset: int = 0
    roi_width: int = 0
    roi_height: int = 0

    @property
    def calibrated(self) -> bool:
        return self.k[0] != 0.0

    def cropped_scaled(self, x: int, y: int, w: int, h: int, out_w: int, out_h: int) -> CameraInfo:
        """Intrinsics after cropping the box (x, y, w, h) and resizing it to (out_w, out_h)."""
        sx, sy = out_w / w, out_h / h
        k = list(self.k)
        p = list(self.p)
        if self.calibrated:
            # u' = (u - x) * sx: fx, cx scale and shift; likewise for v. P's Tx, Ty scale with f.
            k[0], k[2] = k[0] * sx, (k[2] - x) * sx
            k[4], k[5] = k[4] * sy, (k[5] - y) * sy
            p[0], p[2], p[3] = p[0] * sx, (p[2] - x) * sx, p[3] * sx
            p[5], p[6], p[7] = p[5] * sy, (p[6] - y) * sy, p[7] * sy
        return replace(
            self,
            width=out_w,
            height=out_h,
            k=tuple(k),
            p=tuple(p),
            roi_x_offset=self.roi_x_offset + x,
            roi_y_offset=self.roi_y_offset + y,
            roi_width=w,
            roi_height=h,
        )


def uncalibrated_camera_info(width: int, height: int, camera_name: str = 'camera') -> CameraInfo:
    """What camera_info_manager publishes without a calibration: size only, K = 0."""
    return CameraInfo(width=width, height=height, camera_name=camera_name, d=(), r=_IDENTITY3)


def _matrix(data: dict[str, Any], key: str, rows: int, cols: int | None, source: str) -> tuple:
    node = data.get(key)
    if not isinstance(node, dict) or 'data' not in node:
        raise CalibrationError(f'{source}: {key} is missing or has no data list')
    values = node['data']
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise CalibrationError(f'{source}: {key}.data must be a list of numbers')
    r, c = node.get('rows'), node.get('cols')
    if r is not None and c is not None and r * c != len(values):
        raise CalibrationError(f'{source}: {key} says {r}x{c} but has {len(values)} values')
    if cols is not None and (r, c) != (rows, cols):
        raise CalibrationError(f'{source}: {key} must be {rows}x{cols}, got {r}x{c}')
    return tuple(float(v) for v in values)


def parse_camera_info(text: str, source: str = '<string>') -> CameraInfo:
    """Parse calibration YAML; ``source`` names the file in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CalibrationError(f'{source}: not valid YAML ({err})') from None
    if not isinstance(data, dict):
        raise CalibrationError(f'{source}: expected a mapping of calibration fields')
    for key in ('image_width', 'image_height'):
        if not isinstance(data.get(key), int) or data[key] <= 0:
            raise CalibrationError(f'{source}: {key} must be a positive integer')
    model = data.get('distortion_model', 'plumb_bob')
    k = _matrix(data, 'camera_matrix', 3, 3, source)
    d = _matrix(data, 'distortion_coefficients', 1, None, source)
    if model in _DISTORTION_SIZES and len(d) not in _DISTORTION_SIZES[model]:
        raise CalibrationError(
            f'{source}: distortion_model {model!r} needs {_DISTORTION_SIZES[model][0]} '
            f'coefficients, got {len(d)}'
        )
    r = (
        _matrix(data, 'rectification_matrix', 3, 3, source)
        if 'rectification_matrix' in data
        else (_IDENTITY3)
    )
    if 'projection_matrix' in data:
        p = _matrix(data, 'projection_matrix', 3, 4, source)
    else:  # monocular: P = [K | 0]
        p = (*k[0:3], 0.0, *k[3:6], 0.0, *k[6:9], 0.0)
    if k[0] <= 0.0 or k[4] <= 0.0:
        raise CalibrationError(f'{source}: camera_matrix focal lengths must be positive')
    return CameraInfo(
        width=data['image_width'],
        height=data['image_height'],
        camera_name=str(data.get('camera_name', 'camera')),
        distortion_model=str(model),
        d=d,
        k=k,
        r=r,
        p=p,
    )


def load_camera_info(path: str | Path) -> CameraInfo:
    """Load a calibration file (a ``file://`` URL is accepted; resolve ``package://`` first)."""
    text_path = str(path)
    if text_path.startswith('file://'):
        text_path = text_path[len('file://') :]
    if '://' in text_path:
        raise CalibrationError(f'{text_path}: only plain paths and file:// URLs are supported')
    p = Path(text_path).expanduser()
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise CalibrationError(f'calibration file {str(p)!r} does not exist') from None
    except OSError as err:
        raise CalibrationError(f'calibration file {str(p)!r} cannot be read: {err}') from None
    return parse_camera_info(text, source=str(p))


def dump_camera_info(info: CameraInfo) -> str:
    """YAML in the same format (round-trips through :func:`parse_camera_info`)."""

    def mat(rows: int, cols: int, data: tuple[float, ...]) -> dict[str, Any]:
        return {'rows': rows, 'cols': cols, 'data': [float(v) for v in data]}

    return yaml.safe_dump(
        {
            'image_width': info.width,
            'image_height': info.height,
            'camera_name': info.camera_name,
            'camera_matrix': mat(3, 3, info.k),
            'distortion_model': info.distortion_model,
            'distortion_coefficients': mat(1, len(info.d), info.d),
            'rectification_matrix': mat(3, 3, info.r),
            'projection_matrix': mat(3, 4, info.p),
        },
        sort_keys=False,
        default_flow_style=None,
    )
