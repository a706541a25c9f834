"""Sustained recording: two 640x480 rgb8 cameras at 30 Hz, IMU at 200 Hz, joint states at 500 Hz.

    . tools/env.sh && python bench/bench_recorder.py [--seconds 30] [--compression none]

A scaled run (default 30 s, not hours): the recorder runs as deployed, in its own process through
the embedded runner (vla run); this process publishes the four streams
from one thread per stream (sensor QoS: reliable, depth 5, as the drivers do), starts an episode,
publishes for --seconds, stops publishing, lets the queue drain and saves the episode. Then the
bag is read back with rosbags and every published message is looked for.

Prints per topic: published, recorded, lost (goal 0; lost = published - recorded, counted by the
header stamps each publisher gave out) and the recorder's own drop accounting; and the
recorder's CPU share (utime + stime of its process over the episode, % of one core), its peak
RSS, and the MB/s written. Runs in a ROS domain of its own, loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / 'src'
STREAMS = {  # topic: (type, rate Hz)
    '/cam_left/image_raw': ('sensor_msgs/msg/Image', 30.0),
    '/cam_right/image_raw': ('sensor_msgs/msg/Image', 30.0),
    '/imu/data': ('sensor_msgs/msg/Imu', 200.0),
    '/joint_states': ('sensor_msgs/msg/JointState', 500.0),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [SRC / 'vla_teleop', SRC / 'vla_data', SRC / 'vla_core', SRC / 'vla_ros_common']
    env['PYTHONPATH'] = os.pathsep.join([*map(str, paths), env.get('PYTHONPATH', '')])
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return env


def _cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _rss_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_recorder(tmp: Path, out: Path, compression: str) -> tuple[subprocess.Popen, Path]:
    import yaml

    params = {
        'output_dir': str(out),
        'topics': [f'{t}={ty}' for t, (ty, _) in STREAMS.items()],
        'min_free_mb': 500.0,
        'compression': compression,
        'graph_period': 0.2,
    }
    graph = tmp / 'recorder.yaml'
    graph.write_text(yaml.safe_dump({'name': 'bench', 'nodes': [{
        'name': 'recorder', 'package': 'vla_teleop', 'executable': 'recorder_node',
        'plugin': 'vla_teleop.recorder_node:RecorderNode', 'parameters': [params]}]}))  # fmt: skip
    log = tmp / 'recorder.log'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vla_ros_common.runner', str(graph),
         '--config-dir', str(ROOT / 'config')],
        env=_env(), stdout=log.open('w'), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, log


def _publish_loop(pub, make, rate: float, stop: threading.Event, sent: list[int]) -> None:
    period = 1.0 / rate
    next_t = time.monotonic()
    while not stop.is_set():
        stamp = time.time_ns()
        pub.publish(make(stamp))
        sent.append(stamp)
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.5:  # hopelessly behind: do not burst
            next_t = time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=30.0, help='episode length (scaled run)')
    parser.add_argument('--compression', default='none', choices=('none', 'zstd', 'lz4'))
    parser.add_argument('--keep', action='store_true', help='keep the recorded bag')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 200)))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    sys.path[:0] = [
        str(SRC / 'vla_teleop'),
        str(SRC / 'vla_data'),
        str(SRC / 'vla_core'),
        str(SRC / 'vla_ros_common'),
    ]

    import numpy as np
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import Image, Imu, JointState

    from vla_interfaces.srv import StartEpisode, StopEpisode
    from vla_ros_common import qos

    tmp = Path(tempfile.mkdtemp(prefix='bench_recorder_'))
    out = tmp / 'episodes'
    recorder, log = _start_recorder(tmp, out, args.compression)
    ctx = Context()
    rclpy.init(context=ctx)
    node = Node('bench_publisher', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)

    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8).tobytes()

    def image(stamp: int) -> Image:
        msg = Image(height=480, width=640, encoding='rgb8', step=640 * 3)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.data = frame
        return msg

    def imu(stamp: int) -> Imu:
        msg = Imu()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.linear_acceleration.z = 9.81
        return msg

    joints = [f'joint{i}' for i in range(7)]

    def joint(stamp: int) -> JointState:
        msg = JointState(name=joints, position=[0.1] * 7, velocity=[0.0] * 7, effort=[0.0] * 7)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        return msg

    makers = {'Image': image, 'Imu': imu, 'JointState': joint}
    classes = {'Image': Image, 'Imu': Imu, 'JointState': JointState}
    pubs = {}
    for topic, (type_name, _) in STREAMS.items():
        short = type_name.rsplit('/', 1)[1]
        pubs[topic] = (node.create_publisher(classes[short], topic, qos.SENSOR_OUT), short)

    def call(srv_type, name: str, **fields):
        client = node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError(f'recorder did not come up: {log.read_text()[-2000:]}')
        future = client.call_async(srv_type.Request(**fields))
        executor.spin_until_future_complete(future, timeout_sec=60.0)
        return future.result()

    try:
        deadline = time.monotonic() + 30.0
        while log.read_text().count('subscribed') < len(STREAMS):
            if time.monotonic() > deadline or recorder.poll() is not None:
                raise RuntimeError(f'recorder did not subscribe: {log.read_text()[-2000:]}')
            time.sleep(0.1)
        started = call(StartEpisode, '/recorder/start_episode', instruction='bench')
        assert started.success, started.message
        stop = threading.Event()
        sent = {topic: [] for topic in STREAMS}
        threads = [
            threading.Thread(
                target=_publish_loop,
                args=(pub, makers[short], STREAMS[topic][1], stop, sent[topic]),
                daemon=True,
            )
            for topic, (pub, short) in pubs.items()
        ]
        cpu0, wall0 = _cpu_seconds(recorder.pid), time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        time.sleep(1.0)  # in flight and queued messages land
        cpu1, wall1 = _cpu_seconds(recorder.pid), time.monotonic()
        stopped = call(StopEpisode, '/recorder/stop_episode', save=True, task_success=True)
        assert stopped.success, stopped.message
        rss = _rss_mb(recorder.pid)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=30)

    bag_dir = Path(stopped.path)
    meta = json.loads((bag_dir / 'episode.json').read_text())
    recorded: dict[str, set[int]] = {t: set() for t in STREAMS}
    with Reader(bag_dir) as reader:
        for conn, _, raw in reader.messages():
            # Header stamp straight from the CDR bytes (sec, nanosec after the 4-byte header).
            sec = int.from_bytes(raw[4:8], 'little', signed=True)
            nsec = int.from_bytes(raw[8:12], 'little')
            recorded[conn.topic].add(sec * 1_000_000_000 + nsec)
    size = sum(p.stat().st_size for p in bag_dir.glob('*.mcap'))
    episode_s = wall1 - wall0
    print(f'bench_recorder: scaled run of {args.seconds:g} s publishing (not a long soak), '
          f'compression {args.compression}, recorder in its own process (runner)')  # fmt: skip
    print(f'{"topic":<24}{"rate":>7}{"published":>11}{"recorded":>10}{"lost":>6}  recorder says')
    total_lost = 0
    for topic in STREAMS:
        published = len(sent[topic])
        lost = len(set(sent[topic]) - recorded[topic])
        total_lost += lost
        d = meta['topics'][topic]['drops']
        says = (f'gaps {d["stamp_gaps"]} (~{d["missing_estimate"]} missing), '
                f'overflow {d["queue_overflows"]}, stale {d["stale"]}')  # fmt: skip
        achieved = published / args.seconds
        print(f'{topic:<24}{achieved:>6.0f}/s{published:>10}{len(recorded[topic]):>10}{lost:>6}  '
              f'{says}')  # fmt: skip
    print(f'messages lost: {total_lost} (goal 0)')
    print(f'recorder CPU: {100 * (cpu1 - cpu0) / episode_s:.0f} % of one core '
          f'({os.cpu_count()} cores on this host, shared), peak RSS {rss:.0f} MB')  # fmt: skip
    print(f'written: {size / 1e6:.0f} MB in {episode_s:.1f} s = {size / 1e6 / episode_s:.1f} MB/s '
          f'({bag_dir})')  # fmt: skip
    if not args.keep:
        shutil.rmtree(tmp)
    return 0


if __name__ == '__main__':
    sys.exit(main())
