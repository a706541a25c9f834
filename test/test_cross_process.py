"""Two nodes in separate processes, started by the embedded runner, exchange an Image and
TFMessages (dynamic /tf and latched /tf_static) with their contents intact."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import transforms3d
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent / 'nodes'))

from crossing_nodes import HEIGHT, PAD, WIDTH, pattern, pattern_tf  # noqa: E402


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cross')
    out = tmp / 'probe.jsonl'
    graph = {
        'name': 'crossing',
        'nodes': [
            {'name': 'pattern', 'package': 'test', 'executable': 'none',
             'plugin': 'crossing_nodes:PatternPublisher', 'process': 'publisher'},
            {'name': 'static_tf', 'package': 'vla_ros_common', 'executable': 'static_tf_publisher',
             'plugin': 'vla_ros_common.static_tf_publisher:StaticTfPublisher',
             'parameters': ['extrinsics.yaml'], 'process': 'publisher'},
            {'name': 'probe', 'package': 'test', 'executable': 'none',
             'plugin': 'crossing_nodes:Probe', 'parameters': [{'output': str(out)}],
             'process': 'subscriber'},
        ],
    }  # fmt: skip
    graph_path = tmp / 'crossing.yaml'
    graph_path.write_text(yaml.safe_dump(graph))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(Path(__file__).parent / 'nodes'), env.get('PYTHONPATH', '')]
    )
    proc = subprocess.run(
        [sys.executable, '-m', 'vla_ros_common.runner', str(graph_path),
         '--config-dir', str(ROOT / 'config'), '--processes', '--duration', '10'],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'started 2 processes' in proc.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return lines


def test_images_cross_intact(records):
    images = [r for r in records if r['topic'] == 'image']
    assert len(images) >= 30, f'only {len(images)} images in a 10 s run at 30 Hz'
    seqs = [r['sec'] for r in images]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for r in images:
        expected = pattern(r['sec'])
        assert (r['width'], r['height'], r['step']) == (WIDTH, HEIGHT, WIDTH * 3 + PAD)
        assert (r['encoding'], r['frame_id'], r['nanosec']) == ('rgb8', 'test_optical_frame', 123)
        padded = np.zeros((HEIGHT, WIDTH * 3 + PAD), np.uint8)
        padded[:, : WIDTH * 3] = expected.reshape(HEIGHT, -1)
        assert r['raw_sha256'] == hashlib.sha256(padded.tobytes()).hexdigest()
        assert r['pixels_sha256'] == hashlib.sha256(expected.tobytes()).hexdigest()


def test_dynamic_tf_crosses_intact(records):
    tfs = [r for r in records if r['topic'] == 'tf']
    assert len(tfs) >= 30
    for r in tfs:
        xyz, quat = pattern_tf(r['sec'])
        assert (r['parent'], r['child']) == ('world', 'probe')
        assert r['xyz'] == list(xyz) and r['quat_wxyz'] == list(quat)


def test_static_tf_is_latched_and_matches_config(records):
    static = {r['child']: r for r in records if r['topic'] == 'tf_static'}
    params = yaml.safe_load((ROOT / 'config' / 'extrinsics.yaml').read_text())
    params = params['static_tf']['ros__parameters']
    assert set(static) == set(params['child_frames'])
    for child in params['child_frames']:
        entry = params[child]
        assert static[child]['parent'] == entry['parent']
        np.testing.assert_allclose(static[child]['xyz'], entry.get('xyz', [0, 0, 0]))
        quat = transforms3d.euler.euler2quat(*entry['rpy'], axes='sxyz')
        np.testing.assert_allclose(static[child]['quat_wxyz'], quat, atol=1e-12)
