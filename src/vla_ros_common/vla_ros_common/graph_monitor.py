"""Watches the graph: message rate and bandwidth of every topic, on /diagnostics and the console.

Subscribes raw (no deserialization) with QoS matched to each topic's publishers, so it never
changes what it measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from vla_core.config import Config, param
from vla_ros_common import diagnostics, qos
from vla_ros_common.node_main import run_node
from vla_ros_common.params import declare_config
from vla_ros_common.topics import message_class, subscription_qos_for

_IGNORED = {'/rosout', '/parameter_events', '/diagnostics'}


@dataclass(frozen=True, kw_only=True)
class GraphMonitorConfig(Config):
    topics: tuple[str, ...] = param(
        (), description='topics to watch; empty: every topic discovered', read_only=True
    )
    period_s: float = param(2.0, description='report period [s]', range=(0.1, 3600.0))
    print_report: bool = param(True, description='also print the report to the console')


@dataclass
class _Counter:
    type_name: str
    messages: int = 0
    bytes: int = 0


class GraphMonitor(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__('graph_monitor', **kwargs)
        self._cfg = declare_config(self, GraphMonitorConfig)
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._subs = []
        self._last = time.monotonic()
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        self._discover_timer = self.create_timer(0.5, self._discover)
        self._report_timer = self.create_timer(self._cfg.value.period_s, self._report)

    def _discover(self) -> None:
        wanted = set(self._cfg.value.topics)
        for topic, types in self.get_topic_names_and_types():
            if topic in self._counters or topic in _IGNORED or (wanted and topic not in wanted):
                continue
            if not self.get_publishers_info_by_topic(topic):
                continue
            try:
                cls = message_class(types[0])
            except ValueError as err:
                self.get_logger().warn(str(err), once=True)
                continue
            self._counters[topic] = _Counter(types[0])
            self._subs.append(
                self.create_subscription(
                    cls,
                    topic,
                    lambda data, t=topic: self._on_message(t, data),
                    subscription_qos_for(self, topic),
                    raw=True,
                )
            )

    def _on_message(self, topic: str, data: bytes) -> None:
        with self._lock:
            counter = self._counters[topic]
            counter.messages += 1
            counter.bytes += len(data)

    def _report(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        with self._lock:
            snapshot = {t: (c.type_name, c.messages, c.bytes) for t, c in self._counters.items()}
            for counter in self._counters.values():
                counter.messages = counter.bytes = 0
        statuses = []
        lines = []
        for topic, (type_name, count, size) in sorted(snapshot.items()):
            rate = count / elapsed
            mbps = size / elapsed / 1e6
            lines.append(f'  {topic:<36} {rate:8.1f} Hz {mbps:8.3f} MB/s  {type_name}')
            statuses.append(
                diagnostics.status(
                    f'graph_monitor: {topic}',
                    diagnostics.OK if count else diagnostics.WARN,
                    'ok' if count else 'no messages',
                    {'rate_hz': rate, 'bandwidth_mb_s': mbps, 'type': type_name},
                )
            )
        if self._cfg.value.print_report and lines:
            print(f'[graph_monitor] {len(lines)} topics over {elapsed:.1f} s:', flush=True)
            print('\n'.join(lines), flush=True)
        self._diag_pub.publish(
            diagnostics.diagnostic_array(self.get_clock().now().to_msg(), statuses)
        )


def main(args: Sequence[str] | None = None) -> int:
    return run_node(GraphMonitor, args)


if __name__ == '__main__':
    raise SystemExit(main())
