"""Video-file source through the driver: count, order, stamps, pacing, errors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sensor_test_utils import decode_level, write_video

from vla_sensors.camera import CameraConfig, CameraDriver
from vla_sensors.camera_sources import CameraError, VideoFileSource


def _collect(driver: CameraDriver, timeout: float = 10.0) -> None:
    assert driver.finished.wait(timeout), 'file replay did not finish'
    deadline = time.monotonic() + 2.0
    while (
        driver.stats().frames_delivered
        < driver.stats().frames_captured - driver.stats().frames_dropped
    ):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_native_rate_replay_keeps_count_order_stamps_and_pacing(video_30):
    got: list[tuple[int, float, int, float]] = []
    lock = threading.Lock()

    def on_frame(image: np.ndarray, stamp: float, seq: int) -> None:
        with lock:
            got.append((decode_level(image), stamp, seq, time.time()))

    cfg = CameraConfig(source='file', file_path=str(video_30))
    driver = CameraDriver(cfg, on_frame)
    t_start = time.time()
    driver.start()
    _collect(driver)
    driver.stop()

    assert [g[0] for g in got] == list(range(30))  # every frame, in order
    assert [g[2] for g in got] == list(range(30))
    stamps = np.array([g[1] for g in got])
    assert np.allclose(np.diff(stamps), 1 / 30, atol=1e-3)  # the file's own timeline
    assert abs(stamps[0] - t_start) < 0.5
    delivered = np.array([g[3] for g in got])
    # Paced like a camera: 29 periods take ~0.97 s (generous upper bound for a shared CPU).
    assert 0.9 < delivered[-1] - delivered[0] < 1.4
    assert np.median(np.diff(delivered)) == pytest.approx(1 / 30, abs=0.01)
    lag = delivered - stamps
    assert np.all(lag > -0.002) and np.median(lag) < 0.02  # delivered at, not before, capture
    s = driver.stats()
    assert (s.frames_captured, s.frames_delivered, s.frames_dropped) == (30, 30, 0)
    assert s.stamp_source == 'file' and s.finished and s.frame_gaps == 0
    assert s.latency_p50 < 0.02


def test_consumer_pace_is_lossless_with_a_slow_consumer(tmp_path):
    path = write_video(tmp_path / 'fast.avi', 40, 200.0)  # 200 fps file, 10 ms consumer
    got: list[tuple[int, float, int]] = []

    def slow(image, stamp, seq):
        time.sleep(0.01)
        got.append((decode_level(image), stamp, seq))

    driver = CameraDriver(
        CameraConfig(source='file', file_path=str(path), file_pace='consumer'), slow
    )
    driver.start()
    _collect(driver)
    driver.stop()
    assert [g[0] for g in got] == list(range(40))
    assert np.allclose(np.diff([g[1] for g in got]), 1 / 200, atol=1e-3)
    assert driver.stats().frames_dropped == 0


def test_slow_consumer_never_stalls_native_capture(video_30):
    seqs: list[int] = []

    def very_slow(image, stamp, seq):
        seqs.append(seq)
        time.sleep(0.15)

    driver = CameraDriver(CameraConfig(source='file', file_path=str(video_30)), very_slow)
    t0 = time.monotonic()
    driver.start()
    assert driver.finished.wait(5.0)
    capture_time = time.monotonic() - t0
    driver.stop()
    s = driver.stats()
    assert s.frames_captured == 30
    assert capture_time < 1.5  # capture ran at the file rate regardless of the consumer
    assert s.frames_dropped >= 20 and len(seqs) < 12
    assert seqs == sorted(seqs) and s.frames_delivered + s.frames_dropped <= 30


def test_latest_and_wait_for_frame_without_callback(video_30):
    driver = CameraDriver(CameraConfig(source='file', file_path=str(video_30), encoding='mono8'))
    driver.start()
    f0 = driver.wait_for_frame(timeout=2.0)
    assert f0 is not None and f0.image.ndim == 2
    f1 = driver.wait_for_frame(after_seq=f0.seq, timeout=2.0)
    assert f1 is not None and f1.seq > f0.seq and f1.stamp > f0.stamp
    driver.stop()


def test_loop_restarts_with_a_continuous_timeline(tmp_path):
    path = write_video(tmp_path / 'short.avi', 5, 100.0)
    src = VideoFileSource(str(path), pace='consumer', loop=True)
    src.open()
    stamps = [src.read().stamp for _ in range(12)]
    src.close()
    assert np.allclose(np.diff(stamps), 0.01, atol=1e-3)


def test_missing_and_undecodable_files_name_the_file(tmp_path):
    missing = tmp_path / 'nope.mp4'
    driver = CameraDriver(CameraConfig(source='file', file_path=str(missing)))
    with pytest.raises(CameraError, match=r"video file '.*nope\.mp4'.*does not exist"):
        driver.start()
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(b'not a video at all' * 100)
    with pytest.raises(CameraError, match=r'junk\.mp4.*cannot be opened'):
        CameraDriver(CameraConfig(source='file', file_path=str(junk))).start()
    with pytest.raises(CameraError, match='is not a regular file'):
        CameraDriver(CameraConfig(source='file', file_path=str(tmp_path))).start()
