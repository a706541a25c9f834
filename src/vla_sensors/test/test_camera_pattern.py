"""Test-pattern source: encodings, policy output, camera_info, counters."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vla_core.config import ConfigError
from vla_sensors.camera import CameraConfig, CameraDriver, PolicyImageConfig
from vla_sensors.camera_info import dump_camera_info, parse_camera_info
from vla_sensors.camera_sources import (
    ENCODINGS,
    PATTERN_BARS_BGR,
    CameraError,
    TestPatternSource,
    convert_encoding,
)

W, H = 320, 240


def _grab(encoding: str, n: int = 3, **cfg):
    frames = []
    done = threading.Event()

    def on_frame(image, stamp, seq):
        frames.append((image, stamp, seq))
        if len(frames) >= n:
            done.set()

    config = CameraConfig(
        source='test_pattern', width=W, height=H, fps=100.0, encoding=encoding, **cfg
    )
    driver = CameraDriver(config, on_frame)
    driver.start()
    assert done.wait(3.0)
    driver.stop()
    return frames, driver


def _bar_pixel(image: np.ndarray, bar: int) -> np.ndarray:
    return image[H // 2, bar * W // 8 + W // 16]


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_each_encoding_has_the_right_layout_and_colours(encoding):
    frames, _ = _grab(encoding)
    image = frames[0][0]
    channels, dtype = ENCODINGS[encoding]
    assert image.dtype == dtype
    assert image.shape == ((H, W, 3) if channels == 3 else (H, W))
    red_bgr = PATTERN_BARS_BGR[5]  # (0, 0, 255)
    expected = {
        'bgr8': red_bgr,
        'rgb8': red_bgr[::-1],
        'mono8': 76,  # ITU-R BT.601 luma of pure red: 0.299 * 255
        'mono16': 76 * 257,
    }[encoding]
    np.testing.assert_allclose(_bar_pixel(image, 5), expected, atol=1 if 'mono' in encoding else 0)
    white = _bar_pixel(image, 0)
    assert np.all(white == (65535 if encoding == 'mono16' else 255))


def test_frame_index_is_embedded_and_stamps_follow_the_schedule():
    frames, driver = _grab('bgr8', n=10)
    idx = [int(sum((img[-1, b, 0] > 127) << b for b in range(16))) for img, _, _ in frames]
    seqs = [s for _, _, s in frames]
    assert idx == seqs  # nothing reordered; the image is the one captured with that seq
    stamps = np.array([st for _, st, _ in frames])
    steps = np.diff(stamps)[np.diff(seqs) == 1]
    assert np.allclose(steps, 0.01, atol=1e-6)
    assert driver.stats().stamp_source == 'synthetic'


def test_policy_output_is_a_separate_cropped_resized_copy():
    raw, small = [], []
    done = threading.Event()
    policy = PolicyImageConfig(enabled=True, crop=(40, 0, 240, 240), width=96, height=96)
    config = CameraConfig(source='test_pattern', width=W, height=H, fps=100.0, policy=policy)

    def on_small(image, stamp, seq):
        small.append((image, stamp, seq))
        if len(small) >= 3:
            done.set()

    driver = CameraDriver(config, lambda i, s, q: raw.append((i, s, q)), on_small)
    driver.start()
    assert done.wait(3.0)
    driver.stop()
    assert raw[0][0].shape == (H, W, 3)  # raw frames stay available at full size
    assert small[0][0].shape == (96, 96, 3)
    assert {q for _, _, q in small} <= {q for _, _, q in raw}
    info = driver.policy_camera_info
    assert (info.width, info.height, info.roi_x_offset, info.roi_width) == (96, 96, 40, 240)


def test_policy_crop_outside_the_image_is_refused():
    policy = PolicyImageConfig(enabled=True, crop=(300, 0, 100, 100))
    config = CameraConfig(source='test_pattern', width=W, height=H, fps=30.0, policy=policy)
    with pytest.raises(CameraError, match=r'policy\.crop.*does not fit in the 320x240'):
        CameraDriver(config).start()


def test_calibration_is_loaded_and_must_match_the_frame_size(tmp_path):
    info = parse_camera_info(CALIBRATION)
    path = tmp_path / 'cam.yaml'
    path.write_text(CALIBRATION)
    ok = CameraConfig(
        source='test_pattern',
        width=640,
        height=480,
        fps=30.0,
        calibration_file=str(path),
        camera_name='wrist',
    )
    driver = CameraDriver(ok)
    driver.start()
    driver.stop()
    assert driver.camera_info == info
    assert driver.frame_id == 'wrist_optical_frame'
    wrong = ok.replace(width=W, height=H)
    with pytest.raises(CameraError, match=r'cam\.yaml.*is for 640x480 but frames are 320x240'):
        CameraDriver(wrong).start()


def test_uncalibrated_camera_info_carries_the_size():
    _, driver = _grab('bgr8', n=1)
    assert (driver.camera_info.width, driver.camera_info.height) == (W, H)
    assert not driver.camera_info.calibrated


def test_config_checks():
    with pytest.raises(ConfigError, match='frame_id'):
        CameraConfig(frame_id='camera_link')
    with pytest.raises(ConfigError, match='file_path'):
        CameraConfig(source='file')
    with pytest.raises(ConfigError, match='pixel_format'):
        CameraConfig(pixel_format='MJPEG')
    with pytest.raises(ConfigError, match='encoding'):
        CameraConfig(encoding='yuv422')
    with pytest.raises(ConfigError, match='crop'):
        PolicyImageConfig(crop=(1, 2, 3))


def test_convert_encoding_accepts_mono_input():
    gray = np.full((4, 4), 9, np.uint8)
    assert convert_encoding(gray, 'bgr8').shape == (4, 4, 3)
    assert convert_encoding(gray, 'mono8') is not None
    with pytest.raises(ValueError):
        convert_encoding(gray, 'bayer_rggb8')


def test_pattern_source_names_itself():
    src = TestPatternSource(64, 48, 10.0, 'checkerboard')
    src.open()
    assert src.read().image.shape == (48, 64, 3)
    assert 'checkerboard' in src.description


CALIBRATION = """
image_width: 640
image_height: 480
camera_name: wrist
camera_matrix:
  rows: 3
  cols: 3
  data: [615.2, 0, 320.5, 0, 615.9, 241.1, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.11, -0.23, 0.001, -0.002, 0.05]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [610.0, 0, 321.0, 0, 0, 612.0, 240.0, 0, 0, 0, 1, 0]
"""


def test_calibration_yaml_round_trip_and_errors(tmp_path):
    info = parse_camera_info(CALIBRATION)
    assert info.k[0] == 615.2 and info.d[1] == -0.23 and len(info.p) == 12
    assert parse_camera_info(dump_camera_info(info)) == info
    bad = CALIBRATION.replace('cols: 5', 'cols: 4')
    with pytest.raises(ValueError, match=r'bad\.yaml: distortion_coefficients says 1x4'):
        parse_camera_info(bad, source='bad.yaml')
    four = CALIBRATION.replace(
        'rows: 1\n  cols: 5\n  data: [0.11, -0.23, 0.001, -0.002, 0.05]',
        'rows: 1\n  cols: 4\n  data: [0.11, -0.23, 0.001, -0.002]',
    )
    with pytest.raises(ValueError, match="'plumb_bob' needs 5"):
        parse_camera_info(four)
    with pytest.raises(ValueError, match='camera_matrix'):
        parse_camera_info(CALIBRATION.replace('camera_matrix', 'cam_matrix'))
    with pytest.raises(CameraError, match=r'bad calibration: .*x\.yaml.* does not exist'):
        CameraDriver(CameraConfig(source='test_pattern', calibration_file=str(tmp_path / 'x.yaml')))


def test_cropped_scaled_intrinsics():
    info = parse_camera_info(CALIBRATION)
    half = info.cropped_scaled(0, 0, 640, 480, 320, 240)
    assert half.k[0] == pytest.approx(307.6) and half.k[2] == pytest.approx(160.25)
    crop = info.cropped_scaled(100, 50, 200, 200, 200, 200)
    assert crop.k[2] == pytest.approx(220.5) and crop.k[5] == pytest.approx(191.1)
    assert crop.p[2] == pytest.approx(221.0)
