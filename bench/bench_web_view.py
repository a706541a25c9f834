"""CPU cost of the browser view (vla_viz web_view, rerun-sdk) on the demo graph (issue 25).

    .venv/bin/python bench/bench_web_view.py [--seconds 60] [--browser]

Runs config/graphs/expert.yaml (sim, controller, robot_state, monitor) in child processes and the
web view in this process, then reports the CPU the view costs per wall second, in % of one core:
this process (subscriptions, forward kinematics, rerun logging) and rerun's server (the child that
buffers the recording and serves the viewer), with the rates the demo reached, and the cost per
camera frame and per joint state so it scales to other rates. ``--browser`` keeps a headless
Chromium viewer connected too (reported on its own: it runs where the user's browser is).
Skips (exit 0) without rerun-sdk.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (Chromium is many processes)."""
    total = 0.0
    for child in Path('/proc').iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / 'stat').read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(')', 1)[1].split()[1])
        if parent == pid:
            total += tree_cpu(int(child.name))
    try:
        return total + cpu_seconds(pid)
    except OSError:
        return total


def _is_our_chromium(proc: Path) -> bool:
    """The browser process screenshots() started (its profile is a vla_chromium_ directory)."""
    try:
        stat = (proc / 'stat').read_text()
        cmdline = (proc / 'cmdline').read_bytes()
    except OSError:
        return False
    parent = int(stat.rsplit(')', 1)[1].split()[1])
    return parent == os.getpid() and b'vla_chromium_' in cmdline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='measured window')
    parser.add_argument('--warmup', type=float, default=20.0, help='seconds before measuring')
    parser.add_argument('--browser', action='store_true', help='keep headless Chromium connected')
    args = parser.parse_args()
    try:
        import rerun  # noqa: F401
    except ImportError:
        print('bench_web_view: skipped (rerun-sdk not installed)')
        return 0
    import rclpy
    from rclpy.parameter import Parameter

    from vla_ros_common.node_main import make_executor
    from vla_viz.web_view_node import WebViewNode

    load = os.getloadavg()
    graph = subprocess.Popen(
        [sys.executable, '-m', 'vla_ros_common.runner', str(ROOT / 'config/graphs/expert.yaml'),
         '--processes'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    rclpy.init()
    params = [Parameter('grpc_port', value=19876), Parameter('web_port', value=19090)]
    node = WebViewNode(parameter_overrides=params)
    executor = make_executor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    browser = None
    if args.browser:
        from vla_viz.browser import screenshots

        shots = screenshots(node.url, period=args.warmup + args.seconds + 5, timeout=1e9)
        browser = threading.Thread(target=lambda: next(shots, None), daemon=True)
        browser.start()
    server_pid = node._server.process.pid
    time.sleep(args.warmup)
    chromium = [int(p.name) for p in Path('/proc').iterdir() if _is_our_chromium(p)]

    def sample() -> tuple[float, ...]:
        browser_cpu = tree_cpu(chromium[0]) if chromium else 0.0
        return (time.monotonic(), cpu_seconds(os.getpid()), tree_cpu(server_pid), browser_cpu,
                node.images, node.joint_states)  # fmt: skip

    start = sample()
    time.sleep(args.seconds)
    end = sample()
    wall = end[0] - start[0]
    view, server, chrome = ((end[i] - start[i]) / wall for i in (1, 2, 3))
    images, joints = end[4] - start[4], end[5] - start[5]
    print(f'load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: '
          f'{" ".join(f"{v:.2f}" for v in os.getloadavg())} ({os.cpu_count()} cores)')  # fmt: skip
    print(
        f'demo rates drawn: {images / wall:.1f} camera frames/s (2 cameras), '
        f'{joints / wall:.1f} joint_states/s'
    )
    print(
        f'view node process: {100 * view:.1f} % of a core; rerun server: {100 * server:.1f} %; '
        f'total {100 * (view + server):.1f} %'
    )
    if images and joints:
        print(
            f'per message (whole view): {1e3 * (view + server) * wall / (images + joints):.2f} ms'
        )
    if args.browser:
        print(f'headless Chromium viewer (software WebGL): {100 * chrome:.1f} % of a core')
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    graph.send_signal(2)
    graph.wait(timeout=20)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
