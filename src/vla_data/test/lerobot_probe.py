"""What LeRobot sees of a v3 dataset, as JSON: run in the LeRobot environment (.venv-lerobot) by
test_lerobot.py, which compares it with what was exported.

    .venv-lerobot/bin/python lerobot_probe.py <dataset root> <video backend> <out.json>
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

from lerobot.datasets import LeRobotDataset


def main(root: str, backend: str, out: str) -> None:
    ds = LeRobotDataset('local/probe', root=root, video_backend=backend)
    frames = []
    for i in range(len(ds)):  # every frame, its videos decoded
        item = ds[i]
        frames.append(
            {
                'episode_index': int(item['episode_index']),
                'frame_index': int(item['frame_index']),
                'index': int(item['index']),
                'timestamp': float(item['timestamp']),
                'task': item['task'],
                'state': item['observation.state'].tolist(),
                'action': item['action'].tolist(),
                # (C, H, W) float in [0, 1]: the shape and each channel's mean
                'images': {
                    key: [list(item[key].shape), item[key].mean(dim=(1, 2)).tolist()]
                    for key in ds.meta.camera_keys
                },
            }
        )
    summary = {
        'fps': ds.fps,
        'num_episodes': ds.num_episodes,
        'num_frames': ds.num_frames,
        'camera_keys': list(ds.meta.camera_keys),
        'stats': {k: sorted(v) for k, v in ds.meta.stats.items()},
        'frames': frames,
    }
    Path(out).write_text(json.dumps(summary))


if __name__ == '__main__':
    main(*sys.argv[1:4])
