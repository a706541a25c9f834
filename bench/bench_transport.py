"""Image transport between two processes: our Fast DDS profile vs the stock one.

    . tools/env.sh && python bench/bench_transport.py [--seconds 5] [--rate 30]

For 640x480 and 1280x720 rgb8 at 30 Hz, under reliable and best-effort QoS, a publisher process
sends frames stamped with the wall clock and a subscriber process records publish-to-callback
latency and which frames arrived. Loopback only, in a ROS domain of its own. Prints p50/p99
latency and loss per case.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / 'config' / 'fastdds.xml'
SIZES = {'640x480': (480, 640), '1280x720': (720, 1280)}


def _qos(reliability: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    reliable = reliability == 'reliable'
    policy = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=5, reliability=policy)


def publisher(args: argparse.Namespace) -> None:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from vla_ros_common.conversions import seconds_to_stamp
    from vla_ros_common.image import numpy_to_image

    rclpy.init()
    node = rclpy.create_node('bench_pub')
    pub = node.create_publisher(Image, 'bench/image', _qos(args.reliability))
    height, width = SIZES[args.size]
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let discovery settle both ways
    period = 1.0 / args.rate
    start = time.monotonic()
    for seq in range(args.frames):
        target = start + seq * period  # absolute deadlines: no drift
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        msg = numpy_to_image(frame, 'rgb8', frame_id=str(seq), stamp=seconds_to_stamp(time.time()))
        pub.publish(msg)
    time.sleep(1.0)  # let the last frames drain before the writer goes away
    node.destroy_node()
    rclpy.try_shutdown()


def subscriber(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    from vla_ros_common.conversions import stamp_to_seconds

    rclpy.init()
    node = rclpy.create_node('bench_sub')
    latencies: list[float] = []
    seen: set[int] = set()

    def on_image(msg: Image) -> None:
        latencies.append(time.time() - stamp_to_seconds(msg.header.stamp))
        seen.add(int(msg.header.frame_id))

    node.create_subscription(Image, 'bench/image', on_image, _qos(args.reliability))
    deadline = time.monotonic() + args.frames / args.rate + 15.0
    while len(seen) < args.frames and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        if seen and max(seen) == args.frames - 1:
            end = time.monotonic() + 1.0  # stragglers
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            break
    print(json.dumps({'latencies': latencies, 'received': len(seen)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def run_case(size: str, reliability: str, profile: bool, frames: int, rate: float) -> dict:
    env = dict(os.environ)
    for key in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'):
        env.pop(key, None)
        if profile:
            env[key] = str(PROFILE)
    env['ROS_DOMAIN_ID'] = str(random.randint(120, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    common = [
        sys.executable, __file__, '--size', size, '--reliability', reliability,
        '--frames', str(frames), '--rate', str(rate),
    ]  # fmt: skip
    sub = subprocess.Popen([*common, '--role', 'sub'], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    pub = subprocess.Popen([*common, '--role', 'pub'], env=env)
    out, _ = sub.communicate(timeout=frames / rate + 60)
    pub.wait(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    lat = sorted(result['latencies'])

    def pct(q: float) -> float:
        return 1e3 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float('nan')

    return {
        'p50_ms': pct(0.50),
        'p99_ms': pct(0.99),
        'loss': 1.0 - result['received'] / frames,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--role', choices=('pub', 'sub'))
    parser.add_argument('--size', default='640x480', choices=tuple(SIZES))
    parser.add_argument('--reliability', default='reliable', choices=('reliable', 'best_effort'))
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--frames', type=int)
    parser.add_argument('--rate', type=float, default=30.0)
    args = parser.parse_args()
    if args.role == 'pub':
        publisher(args)
        return 0
    if args.role == 'sub':
        subscriber(args)
        return 0
    frames = args.frames or int(args.seconds * args.rate)
    print(f'image transport between two processes, rgb8 @ {args.rate:g} Hz, {frames} frames/case')
    print(f'{"size":<10} {"QoS":<12} {"profile":<8} {"p50 ms":>8} {"p99 ms":>8} {"loss":>7}')
    for size in SIZES:
        for reliability in ('reliable', 'best_effort'):
            for profile in (False, True):
                r = run_case(size, reliability, profile, frames, args.rate)
                name = 'ours' if profile else 'stock'
                print(
                    f'{size:<10} {reliability:<12} {name:<8} {r["p50_ms"]:8.2f} '
                    f'{r["p99_ms"]:8.2f} {100 * r["loss"]:6.1f}%',
                    flush=True,
                )
    return 0


if __name__ == '__main__':
    sys.exit(main())
