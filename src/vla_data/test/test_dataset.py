"""Bags written with the recorder's bag writer -> dataset, sync report, loader, LeRobot export."""

from __future__ import annotations

from fractions import Fraction
import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from vla_data.bag import BagWriter, write_json_atomic
from vla_data.dataset import (
    BuildConfig,
    DatasetBuildError,
    DatasetFormatError,
    EpisodeDataset,
    build_dataset,
)
from vla_data.dataset.build import main
from vla_data.episodes_store import EpisodeStore
from vla_data.message_definitions import message_definition, type_description_hash

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * NS
SCENE = '/camera/scene_camera/image_raw'
WRIST = '/camera/wrist_camera/image_raw'
TYPES = {
    SCENE: 'sensor_msgs/msg/Image',
    WRIST: 'sensor_msgs/msg/Image',
    '/joint_states': 'sensor_msgs/msg/JointState',
    '/joint_commands': 'sensor_msgs/msg/JointState',
    '/expert/action_chunk': 'vla_interfaces/msg/ActionChunk',
}
STORE = get_typestore(Stores.EMPTY)
for _t in set(TYPES.values()):
    STORE.register(get_types_from_msg(message_definition(_t), _t))
T = STORE.types


def _header(stamp_ns: int) -> object:
    sec, nsec = divmod(stamp_ns, NS)
    return T['std_msgs/msg/Header'](T['builtin_interfaces/msg/Time'](sec, nsec), '')


def _cdr(msg: object, type_name: str) -> bytes:
    return bytes(STORE.serialize_cdr(msg, type_name))


def _image(stamp: int, frame: int, shape: tuple[int, int], encoding: str) -> bytes:
    h, w = shape
    px = np.zeros((h, w, 3), np.uint8)
    px[..., 0] = frame % 256  # red channel = frame number, to check which frame was picked
    px[..., 2] = 7
    if encoding == 'bgr8':
        px = px[..., ::-1].copy()
    msg = T['sensor_msgs/msg/Image'](_header(stamp), h, w, encoding, 0, w * 3, px.reshape(-1))
    return _cdr(msg, 'sensor_msgs/msg/Image')


def _joints(stamp: int, names: list[str], values: list[float]) -> bytes:
    msg = T['sensor_msgs/msg/JointState'](
        _header(stamp), names, np.array(values, float), np.array([]), np.array([])
    )
    return _cdr(msg, 'sensor_msgs/msg/JointState')


def _chunk(stamp: int, seq: int, horizon: int = 10, dt: float = 0.1) -> bytes:
    # Columns in the other order than joint_states: the builder reorders by name.
    times = (stamp - T0) / NS + dt * np.arange(horizon)
    targets = np.stack([-times, times], axis=1)  # j2 = -t, j1 = t
    msg = T['vla_interfaces/msg/ActionChunk'](
        _header(stamp), ['j2', 'j1'], dt, horizon, targets.reshape(-1), 'expert', seq
    )
    return _cdr(msg, 'vla_interfaces/msg/ActionChunk')


def write_episode(
    root: Path,
    index: int,
    *,
    seconds: float = 3.0,
    instruction: str = 'push the red block',
    status: str = 'saved',
    success: bool | None = True,
    scene_skip: tuple[int, ...] = (),
    scene_duplicate: tuple[int, ...] = (),
    wrist_skip: tuple[int, ...] = (),
    joint_skip: tuple[int, ...] = (),
    chunk_skip: tuple[int, ...] = (),
    close: bool = True,
) -> Path:
    """An episode as the recorder writes it: scene camera 10 Hz rgb8 (received 150 ms late),
    wrist camera 20 Hz bgr8, joint states 100 Hz (j1 = t, j2 = 2t), expert chunks 5 Hz."""
    path = root / f'episode_{index:06d}'
    bag = BagWriter(path, custom_data={'instruction': instruction})
    for topic, type_name in TYPES.items():
        bag.add_topic(
            topic, type_name, [], message_definition(type_name), type_description_hash(type_name)
        )
    msgs: list[tuple[int, str, bytes]] = []
    for i in range(int(seconds * 10)):
        if i in scene_skip:
            continue
        s = T0 + i * 100 * MS
        for _ in range(2 if i in scene_duplicate else 1):
            msgs.append((s + 150 * MS, SCENE, _image(s, i, (12, 16), 'rgb8')))
    for i in range(int(seconds * 20)):
        if i not in wrist_skip:
            s = T0 + i * 50 * MS + 2 * MS
            msgs.append((s + 5 * MS, WRIST, _image(s, i, (8, 8), 'bgr8')))
    for i in range(int(seconds * 100)):
        s = T0 + i * 10 * MS + 1 * MS
        t = (s - T0) / NS
        if i not in joint_skip:
            msgs.append((s + MS, '/joint_states', _joints(s, ['j1', 'j2'], [t, 2 * t])))
        msgs.append((s + MS, '/joint_commands', _joints(s, ['j1', 'j2'], [t + 1, 2 * t + 1])))
    for i in range(int(seconds * 5)):
        if i not in chunk_skip:
            s = T0 + i * 200 * MS
            msgs.append((s + 30 * MS, '/expert/action_chunk', _chunk(s, i)))
    msgs.sort(key=lambda m: m[0])
    for k, (log_time, topic, data) in enumerate(msgs):
        bag.write(topic, log_time, data)
        if k % 200 == 0:
            bag.flush()
    episode = {
        'index': index, 'instruction': instruction, 'task': 'push_red', 'operator': 'test',
        'robot': 'sim_arm', 'seed': index, 'software_version': 'test', 'start_ns': T0,
        'source': 'auto', 'status': status, 'success': success, 'end_reason': 'auto_success',
        'topics': {SCENE: {'drops': {'stale': 0, 'missing_estimate': 0}}},
    }  # fmt: skip
    write_json_atomic(path / 'episode.json', episode)
    if close:
        bag.close()
    else:  # a killed recorder: flushed chunks on disk, a torn record at the end, no footer
        bag.flush()
        bag._file.write(b'\x05torn record')
        bag._file.flush()
        bag.abort()
    return path


def quiet_cfg(**changes: object) -> BuildConfig:
    return BuildConfig().replace(**changes)


@pytest.fixture
def bags(tmp_path: Path) -> Path:
    root = tmp_path / 'bags'
    write_episode(root, 0)
    write_episode(root, 1, instruction='push the green block', success=False)
    write_episode(root, 3, seconds=2.0)
    (root / 'discarded').mkdir()
    return root


def test_build_and_load(bags: Path, tmp_path: Path):
    out = tmp_path / 'ds'
    result = build_dataset(bags, out, progress=False)
    assert (result.episodes, result.excluded) == (3, [])
    info = json.loads((out / 'dataset.json').read_text())
    assert info['fps'] == 10.0 and set(info['cameras']) == {'scene_camera', 'wrist_camera'}
    assert info['cameras']['scene_camera']['shape'] == [12, 16, 3]
    assert info['state']['names'] == ['j1', 'j2']
    assert info['action']['topic'] == '/expert/action_chunk'
    assert info['action']['names'] == ['j2', 'j1']  # the chunk's own order
    assert len(info['sources'][0]['sha256'][0]) == 64
    ds = EpisodeDataset(out, horizon=5)
    assert [e.source_index for e in ds.episodes] == [0, 1, 3]
    assert [e.length for e in ds.episodes] == [30, 30, 20]  # camera-anchored 10 Hz grid
    assert len(ds) == 80
    s = ds[3]
    assert s['images']['scene_camera'].shape == (12, 16, 3)
    assert s['images']['scene_camera'].dtype == np.uint8
    assert s['images']['scene_camera'][0, 0].tolist() == [3, 0, 7]  # frame 3 at tick 3
    assert s['images']['wrist_camera'][0, 0].tolist() == [6, 0, 7]  # bgr8 -> RGB, frame 6
    t = 0.3  # by header stamp; the scene camera's 150 ms receive latency does not matter
    np.testing.assert_allclose(s['state'], [t, 2 * t], atol=1e-6)  # interpolated at the tick
    assert s['action'].shape == (5, 2) and s['action'].dtype == np.float32
    np.testing.assert_allclose(s['action'][:, 1], t + 0.1 * np.arange(5), atol=1e-5)
    np.testing.assert_allclose(s['action'][:, 0], -(t + 0.1 * np.arange(5)), atol=1e-5)
    assert not s['action_is_pad'].any()
    assert s['instruction'] == 'push the red block' and s['timestamp'] == pytest.approx(0.3)
    last = ds[29]
    assert last['action_is_pad'].tolist() == [False, True, True, True, True]
    np.testing.assert_allclose(last['action'][1:], np.repeat(last['action'][:1], 4, 0))
    assert ds[30]['instruction'] == 'push the green block' and ds[30]['success'] is False
    assert len(EpisodeDataset(out, success_only=True)) == 50
    only = EpisodeDataset(out, cameras=['wrist_camera'], episodes=[2])
    assert len(only) == 20 and list(only[0]['images']) == ['wrist_camera']
    arrays = ds.episode_arrays(0)
    np.testing.assert_array_equal(
        arrays['source_stamp_ns']['scene_camera'], arrays['stamp_ns']
    )  # the grid sits on the camera's stamps
    report = json.loads((out / 'sync_report.json').read_text())
    assert report['ok'] and len(report['episodes']) == 3
    streams = report['episodes'][0]['streams']
    assert streams[SCENE]['max_skew_s'] == 0.0
    assert streams['/joint_states']['max_skew_s'] == pytest.approx(0.001)
    assert report['episodes'][0]['max_cross_skew_s'] == pytest.approx(0.002)
    with pytest.raises(DatasetBuildError, match='not empty'):
        build_dataset(bags, out, progress=False)


def test_build_is_reproducible(bags: Path, tmp_path: Path):
    build_dataset(bags, tmp_path / 'a', progress=False)
    build_dataset(bags, tmp_path / 'b', progress=False)
    for rel in ('data/episode_000000.parquet', 'episodes.parquet', 'dataset.json'):
        a, b = (tmp_path / d / rel for d in ('a', 'b'))
        if rel.endswith('.json'):
            assert a.read_text() == b.read_text()  # no build time or output path in it
        else:
            assert pq.read_table(a).equals(pq.read_table(b))


def test_stale_camera_fails_naming_topic_and_skew(bags: Path, tmp_path: Path, capsys):
    # The scene camera delivers nothing for 0.6 s (frames 10..15): ticks up to 0.3 s from a frame.
    write_episode(bags, 4, scene_skip=tuple(range(10, 16)))
    out = tmp_path / 'ds'
    with pytest.raises(DatasetBuildError) as err:
        build_dataset(bags, out, progress=False)
    msg = str(err.value)
    assert 'episode_000004' in msg
    assert f'{SCENE}: skew 0.300 s at t=1.200 s exceeds max_skew 0.050 s' in msg
    assert not (out / 'dataset.json').exists()
    report = json.loads((out / 'sync_report.json').read_text())
    assert not report['ok']
    bad = report['episodes'][-1]
    assert not bad['ok'] and bad['streams'][SCENE]['reused'] == 6
    # The CLI: exit status 2 and the same message; a larger bound accepts the episode.
    assert main([str(bags), str(out), '--no-progress']) == 2
    assert f'{SCENE}: skew 0.300 s' in capsys.readouterr().err
    assert main([str(bags), str(out), '--no-progress', '--max-skew', '0.35']) == 0
    assert EpisodeDataset(out).info['total_episodes'] == 4
    # --skip-failing builds the others and says which was left out.
    out2 = tmp_path / 'ds2'
    assert main([str(bags), str(out2), '--no-progress', '--skip-failing']) == 0
    assert 'left out' in capsys.readouterr().out
    assert [e.source_index for e in EpisodeDataset(out2).episodes] == [0, 1, 3]


def test_duplicates_and_drops_are_counted(tmp_path: Path):
    root = tmp_path / 'bags'
    write_episode(
        root,
        0,
        scene_duplicate=(4, 5, 20),  # re-sent frames
        wrist_skip=(12, 13),  # two frames lost (one alone is within gap_factor's jitter)
        joint_skip=(100, 101, 102, 103, 104),  # 50 ms of joint states lost
        chunk_skip=(7,),  # one expert chunk lost: the previous chunk's span covers the hole
    )
    out = tmp_path / 'ds'
    build_dataset(root, out, progress=False)
    streams = json.loads((out / 'sync_report.json').read_text())['episodes'][0]['streams']
    assert streams[SCENE]['duplicates'] == 3 and streams[SCENE]['dropped'] == 0
    assert streams[WRIST]['dropped'] == 2 and streams[WRIST]['gaps'] == 1
    assert streams['/joint_states']['dropped'] == 5
    chunk = streams['/expert/action_chunk']
    assert chunk['sequence_gaps'] == 1 and chunk['dropped'] == 1
    ds = EpisodeDataset(out)
    assert len(ds) == 30
    frames = [ds[i]['images']['scene_camera'][0, 0, 0] for i in range(30)]
    assert frames == list(range(30))  # duplicates used once, nothing repeated
    np.testing.assert_allclose(ds[10]['state'], [1.0, 2.0], atol=1e-6)  # across the gap


def test_interrupted_episode_must_be_recovered_then_is_included(tmp_path: Path):
    root = tmp_path / 'bags'
    write_episode(root, 0)
    write_episode(root, 1, status='recording', success=None, close=False)
    with pytest.raises(DatasetBuildError, match='vla recover'):
        build_dataset(root, tmp_path / 'ds', progress=False)
    reports = EpisodeStore(root).recover_all()
    assert any('recovered' in r for r in reports)
    build_dataset(root, tmp_path / 'ds', progress=False, overwrite=True)
    ds = EpisodeDataset(tmp_path / 'ds')
    ep = ds.episodes[1]
    assert (ep.status, ep.success, ep.source_index) == ('interrupted', None, 1)
    assert 10 <= ep.length <= 30  # what the flushed chunks held
    cfg = quiet_cfg(statuses=('saved',))
    build_dataset(root, tmp_path / 'ds3', cfg, progress=False)
    assert len(EpisodeDataset(tmp_path / 'ds3').episodes) == 1


def test_joint_command_actions_and_no_episode(tmp_path: Path):
    root = tmp_path / 'bags'
    write_episode(root, 0)
    cfg = quiet_cfg(action_topics=('/joint_commands',), cameras=(SCENE,))
    build_dataset(root, tmp_path / 'ds', cfg, progress=False)
    ds = EpisodeDataset(tmp_path / 'ds')
    assert ds.camera_names == ['scene_camera'] and ds.action_names == ['j1', 'j2']
    np.testing.assert_allclose(ds[5]['action'][0], [1.5, 2.0], atol=1e-6)
    with pytest.raises(DatasetBuildError, match='no episode bags'):
        build_dataset(tmp_path / 'nothing', tmp_path / 'x', progress=False)
    with pytest.raises(DatasetFormatError):
        EpisodeDataset(tmp_path / 'nothing')


def test_lerobot_v3_export(bags: Path, tmp_path: Path, capsys):
    out = tmp_path / 'ds'
    assert main([str(bags), str(out), '--lerobot', '--no-progress', '--rate', '10']) == 0
    printed = capsys.readouterr().out
    assert 'episode_000000: OK' in printed and 'max cross-stream skew' in printed
    lr = out / 'lerobot'
    info = json.loads((lr / 'meta' / 'info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 10
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (3, 80, 2)
    feats = info['features']
    assert feats['observation.images.scene_camera']['dtype'] == 'video'
    assert feats['observation.images.scene_camera']['shape'] == [12, 16, 3]
    assert feats['observation.state']['names'] == ['j1', 'j2']
    assert feats['action']['shape'] == [2]
    data = pq.read_table(lr / 'data' / 'chunk-000' / 'file-000.parquet')
    assert data.num_rows == 80
    assert data.column('index').to_pylist() == list(range(80))
    assert data.column('episode_index').to_pylist()[30] == 1
    assert data.column('timestamp').to_pylist()[31] == pytest.approx(0.1)
    assert data.column('task_index').to_pylist()[30] == 1
    eps = pq.read_table(lr / 'meta' / 'episodes' / 'chunk-000' / 'file-000.parquet').to_pylist()
    assert [(e['dataset_from_index'], e['dataset_to_index']) for e in eps] == [
        (0, 30), (30, 60), (60, 80)
    ]  # fmt: skip
    key = 'videos/observation.images.scene_camera'
    assert eps[2][f'{key}/from_timestamp'] == pytest.approx(6.0)
    assert eps[2][f'{key}/to_timestamp'] == pytest.approx(8.0)
    assert eps[1]['tasks'] == ['push the green block']
    assert len(eps[0]['stats/observation.state/mean']) == 2
    tasks = pq.read_table(lr / 'meta' / 'tasks.parquet')
    assert tasks.column('task').to_pylist() == ['push the red block', 'push the green block']
    assert json.loads(tasks.schema.metadata[b'pandas'])['index_columns'] == ['task']
    stats = json.loads((lr / 'meta' / 'stats.json').read_text())
    image_stats = stats['observation.images.scene_camera']
    assert set(image_stats) == {'min', 'max', 'mean', 'std', 'count', 'q01', 'q10', 'q50', 'q90',
                                'q99'}  # LeRobot 0.6.1's  # fmt: skip
    assert np.array(image_stats['q99']).shape == (3, 1, 1) and image_stats['count'] == [80]
    assert stats['frame_index']['max'] == [29.0]
    # frame_index: 0..29, 0..29, 0..19 (numpy's linear quantiles of those 80 values)
    all_frames = np.r_[np.arange(30), np.arange(30), np.arange(20)]
    for q in ('q01', 'q10', 'q50', 'q90', 'q99'):
        assert stats['frame_index'][q] == [np.quantile(all_frames, int(q[1:]) / 100)]
    assert eps[2]['stats/frame_index/q50'] == [9.5]
    info_video = feats['observation.images.scene_camera']['info']
    assert (info_video['video.codec'], info_video['video.pix_fmt']) == ('h264', 'yuv420p')
    video = lr / 'videos' / 'observation.images.scene_camera' / 'chunk-000' / 'file-000.mp4'
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ('h264', 'libx264')
        frames = [(f.pts * f.time_base, f.key_frame, f.to_ndarray(format='rgb24'))
                  for f in container.decode(stream)]  # fmt: skip
    assert len(frames) == 80 and frames[0][2].shape == (12, 16, 3)
    assert [t for t, _, _ in frames] == [Fraction(i, 10) for i in range(80)]  # pts = index/fps
    keyframes = [i for i, (_, key, _) in enumerate(frames) if key]
    assert keyframes[0] == 0 and max(np.diff(keyframes)) <= 2  # at most gop = 2 frames apart
    # Lossy codec: the red channel (frame number) survives approximately.
    assert abs(int(frames[62][2][..., 0].mean()) - 2) <= 6
