"""Our LeRobot v3 export, and through LeRobot 0.6.1 itself: every frame loads with its videos
decoded, and ``lerobot-edit-dataset`` deletes episodes from it and splits it.

LeRobot 0.6.1 needs Python >= 3.12 and torch < 2.12, so it lives in its own environment
(``make lerobot-env`` -> .venv-lerobot, or $VLA_LEROBOT_PYTHON); without one the tests marked
``lerobot`` skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from vla_core.config import ConfigError
from vla_data.dataset.format import DatasetFormatError, DatasetWriter, encode_png, frame_columns
from vla_data.dataset.lerobot import LeRobotConfig, export_lerobot

REPO = Path(__file__).resolve().parents[3]
LEROBOT_PYTHON = Path(
    os.environ.get('VLA_LEROBOT_PYTHON', REPO / '.venv-lerobot' / 'bin' / 'python')
)
PROBE = Path(__file__).with_name('lerobot_probe.py')

needs_lerobot = pytest.mark.skipif(
    not LEROBOT_PYTHON.is_file(),
    reason=f'no LeRobot environment ({LEROBOT_PYTHON}): make lerobot-env',
)

FPS = 10
EPISODES = [('push the red block', 12), ('push the green block', 15), ('push the red block', 10)]
CAMERAS = {'scene_camera': (48, 64), 'wrist_camera': (64, 64)}  # (H, W)
JOINTS = ['j1', 'j2', 'gripper']


def _pixel(episode: int, frame: int, camera: int) -> tuple[int, int, int]:
    """Each frame's flat colour says which frame it is (video is lossy: coarse steps)."""
    return 16 * frame, 40 + 60 * episode + 20 * camera, 200


def _state(episode: int, frame: int) -> list[float]:
    return [float(episode), 0.1 * frame, -0.05 * frame]


def _our_dataset(root: Path) -> Path:
    writer = DatasetWriter(root)
    for e, (instruction, n) in enumerate(EPISODES):
        stamps = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000
        state = np.array([_state(e, i) for i in range(n)])
        images = {
            cam: [encode_png(np.full((h, w, 3), _pixel(e, i, k), np.uint8)) for i in range(n)]
            for k, (cam, (h, w)) in enumerate(CAMERAS.items())
        }
        columns = frame_columns(stamps, FPS, state, state + 0.25, images,
                                {key: stamps for key in ('state', 'action', *CAMERAS)})  # fmt: skip
        writer.add_episode(
            pa.table(columns),
            {'source_index': e, 'bag': '', 'instruction': instruction, 'task': 'push',
             'success': True, 'status': 'saved', 'start_ns': int(stamps[0]), 'robot': 'test_arm',
             'operator': 'test', 'seed': e, 'max_cross_skew_s': 0.0},
        )  # fmt: skip
    return writer.finish(
        {
            'fps': FPS,
            'cameras': {c: {'topic': c, 'shape': [h, w, 3]} for c, (h, w) in CAMERAS.items()},
            'state': {'topic': '/joint_states', 'field': 'position', 'names': JOINTS},
            'action': {'topic': '/joint_commands', 'names': JOINTS},
        }
    )


def test_av1_export_names_the_codec_lerobot_reencodes_with(tmp_path) -> None:
    cfg = LeRobotConfig(vcodec='libsvtav1', crf=30)
    out = export_lerobot(_our_dataset(tmp_path / 'ours'), tmp_path / 'lerobot', cfg)
    info = json.loads((out / 'meta' / 'info.json').read_text())
    video = info['features']['observation.images.scene_camera']['info']
    # 'av1' is what LeRobot's get_video_info writes; it reads it back as libsvtav1.
    assert (video['video.codec'], video['video.pix_fmt']) == ('av1', 'yuv420p')
    assert (video['video.g'], video['video.crf'], video['video.preset']) == (2, 30, 12)
    with pytest.raises(ConfigError, match='crf'):
        LeRobotConfig(vcodec='h264', crf=60)


def test_odd_image_sizes_are_refused_before_anything_is_replaced(tmp_path) -> None:
    ours = _our_dataset(tmp_path / 'ours')
    info = json.loads((ours / 'dataset.json').read_text())
    info['cameras']['wrist_camera']['shape'] = [64, 63, 3]
    (ours / 'dataset.json').write_text(json.dumps(info))
    (tmp_path / 'lerobot').mkdir()
    (tmp_path / 'lerobot' / 'keep').touch()
    with pytest.raises(DatasetFormatError, match='wrist_camera is 63x64; yuv420p'):
        export_lerobot(ours, tmp_path / 'lerobot')
    assert (tmp_path / 'lerobot' / 'keep').exists()


def _run(args: list[str], tmp_path: Path) -> None:
    """A command of the LeRobot environment, offline, with LeRobot's home in ``tmp_path``."""
    env = {**os.environ, 'HF_LEROBOT_HOME': str(tmp_path / 'hf_lerobot'), 'HF_HUB_OFFLINE': '1'}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {done.returncode}:\n{output[-4000:]}')
    sys.stdout.write(f'$ {" ".join(args)}\n{output}')  # shown with pytest -s


def _probe(root: Path, tmp_path: Path) -> dict:
    out = tmp_path / f'{root.name}.json'
    _run([str(LEROBOT_PYTHON), str(PROBE), str(root), 'pyav', str(out)], tmp_path)
    return json.loads(out.read_text())


def _edit(tmp_path: Path, root: Path, new_root: Path, *operation: str) -> None:
    cli = LEROBOT_PYTHON.with_name('lerobot-edit-dataset')
    common = ['--repo_id', 'local/vla', '--root', str(root), '--new_repo_id', 'local/vla_edited']
    _run([str(cli), *common, '--new_root', str(new_root), *operation], tmp_path)


def _assert_frames_are(seen: dict, episodes: list[int]) -> None:
    """LeRobot's frames, in order, are those of our ``episodes`` (renumbered from 0)."""
    frames = iter(seen['frames'])
    index = 0
    for new_e, e in enumerate(episodes):
        for i in range(EPISODES[e][1]):
            f = next(frames)
            assert (f['episode_index'], f['frame_index'], f['index']) == (new_e, i, index)
            assert f['timestamp'] == pytest.approx(i / FPS)
            assert f['task'] == EPISODES[e][0]
            np.testing.assert_allclose(f['state'], _state(e, i), atol=1e-6)
            np.testing.assert_allclose(f['action'], np.add(_state(e, i), 0.25), atol=1e-6)
            for k, (cam, (h, w)) in enumerate(CAMERAS.items()):
                shape, means = f['images'][f'observation.images.{cam}']
                assert shape == [3, h, w]
                np.testing.assert_allclose(np.multiply(means, 255), _pixel(e, i, k), atol=4)
            index += 1
    assert next(frames, None) is None


@pytest.mark.lerobot
@needs_lerobot
@pytest.mark.timeout(1800)
@pytest.mark.parametrize('vcodec', ['h264', 'libsvtav1'])
def test_lerobot_loads_every_frame_and_lerobot_edit_dataset_edits_it(tmp_path, vcodec) -> None:
    cfg = LeRobotConfig(vcodec=vcodec)
    ours = export_lerobot(_our_dataset(tmp_path / 'ours'), tmp_path / 'lerobot', cfg)
    seen = _probe(ours, tmp_path)
    assert (seen['fps'], seen['num_episodes'], seen['num_frames']) == (FPS, 3, 37)
    assert seen['camera_keys'] == [f'observation.images.{c}' for c in CAMERAS]
    assert {'q01', 'q10', 'q50', 'q90', 'q99'} <= set(seen['stats']['observation.state'])
    _assert_frames_are(seen, [0, 1, 2])

    # LeRobot re-encodes the kept frames with the encoder settings info.json names.
    _edit(tmp_path, ours, tmp_path / 'deleted',
          '--operation.type', 'delete_episodes', '--operation.episode_indices', '[1]')  # fmt: skip
    deleted = _probe(tmp_path / 'deleted', tmp_path)
    assert (deleted['num_episodes'], deleted['num_frames']) == (2, 22)
    _assert_frames_are(deleted, [0, 2])
    if vcodec != 'h264':
        return  # the same code path again
    _edit(tmp_path, ours, tmp_path / 'split', '--operation.type', 'split',
          '--operation.splits', '{"train": [0, 2], "val": [1]}')  # fmt: skip
    _assert_frames_are(_probe(tmp_path / 'split' / 'val', tmp_path), [1])
