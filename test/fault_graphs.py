"""The graphs under fault injection: started group by group by the embedded runner, each group in
its own process group (so ``kill -9`` takes the whole group, and a group can be started again),
observed by a probe node in this process.

Shared by test/test_faults.py and bench/bench_faults.py, with the cases of test/fault_cases.py
and test/fault_user_errors.py.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any, TypeVar

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
import yaml

from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_ros_common.conversions import stamp_to_seconds
from vla_ros_common.node_main import make_executor

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config'
JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6', 'gripper')
CONTROLLER = 'controller: controller'
POLICY = 'policy: inference'
# Hang guard of every wait (a loaded machine starts processes slowly); no timing is asserted
# with it: contracts are checked on message stamps and tick counts.
WAIT = 60.0
T = TypeVar('T')

# Where each graph's controller takes its chunks (its control/reference remap).
CHUNK_TOPICS = {'expert.yaml': 'expert/action_chunk', 'deploy.yaml': 'policy/action_chunk'}
# Observation aids only: the probe gets every command and report however late its thread runs,
# and reports come often enough that a fault case does not wait seconds for the next one.
OBSERVE: dict[str, dict[str, Any]] = {
    'controller': {
        'qos_overrides./joint_commands.publisher.depth': 10000,
        'qos_overrides./diagnostics.publisher.depth': 10000,
        'diagnostics_period': 0.2,
    },
    'policy': {'diagnostics_period': 0.2},
}


def wait_for(cond: Callable[[], T], timeout: float = WAIT, period: float = 0.02) -> T | None:
    """``cond()``'s first truthy value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(period)


@dataclass(frozen=True)
class Outcome:
    fault: str
    expected: str
    observed: str
    figure: str
    ok: bool


class Checks:
    """Collects what did not hold, so an outcome says all of it."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, cond: object, what: str) -> bool:
        if not cond:
            self.failed.append(what)
        return bool(cond)

    def outcome(self, fault: str, expected: str, observed: str, figure: str) -> Outcome:
        if self.failed:
            observed = 'FAILED: ' + '; '.join(self.failed) + f' ({observed})'
        return Outcome(fault, expected, observed, figure, not self.failed)


@dataclass(frozen=True)
class Report:
    stamp: float
    name: str
    level: int
    message: str
    values: dict[str, str]

    @property
    def periodic(self) -> bool:  # the controller's status-change reports carry no loop figures
        return 'achieved_hz' in self.values or self.name != CONTROLLER

    def count(self, key: str) -> int:
        return int(self.values.get(key, '0'))


@dataclass(frozen=True)
class Command:
    t: float
    position: np.ndarray


@dataclass
class Probe:
    """Records joint_commands, /diagnostics, policy chunks and joint_states; ``node`` publishes
    the faults. Its clock is simulated time (/clock), as the graph's."""

    context: Context
    node: Node
    lock: threading.Lock = field(default_factory=threading.Lock)
    commands: list[Command] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    chunks: list[float] = field(default_factory=list)  # stamps of policy/action_chunk
    states: list[JointState] = field(default_factory=list)

    @classmethod
    def start(cls) -> Probe:
        context = Context()
        rclpy.init(context=context)
        node = Node(
            'fault_probe',
            context=context,
            parameter_overrides=[Parameter('use_sim_time', value=True)],
        )
        probe = cls(context, node)
        everything = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(JointState, 'joint_commands', probe._on_command, everything)
        node.create_subscription(DiagnosticArray, '/diagnostics', probe._on_diag, everything)
        node.create_subscription(ActionChunkMsg, 'policy/action_chunk', probe._on_chunk, everything)
        node.create_subscription(JointState, 'joint_states', probe._on_state, 100)
        executor = make_executor(context=context)
        executor.add_node(node)
        probe._executor = executor
        probe._spinner = threading.Thread(target=executor.spin, daemon=True)
        probe._spinner.start()
        return probe

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def sim_now(self) -> float:
        """Simulated time: the newer of this node's /clock and the newest joint state (either
        may lag on a loaded machine, and the /clock one starts at 0)."""
        with self.lock:
            state = stamp_to_seconds(self.states[-1].header.stamp) if self.states else 0.0
        return max(self.now(), state)

    def _on_command(self, msg: JointState) -> None:
        cmd = Command(stamp_to_seconds(msg.header.stamp), np.asarray(msg.position, float))
        with self.lock:
            self.commands.append(cmd)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        stamp = stamp_to_seconds(msg.header.stamp)
        with self.lock:
            for s in msg.status:
                values = {kv.key: kv.value for kv in s.values}
                self.reports.append(Report(stamp, s.name, s.level[0], s.message, values))

    def _on_chunk(self, msg: ActionChunkMsg) -> None:
        with self.lock:
            self.chunks.append(stamp_to_seconds(msg.header.stamp))

    def _on_state(self, msg: JointState) -> None:
        with self.lock:
            self.states.append(msg)

    # --- queries ----------------------------------------------------------------------------------

    def get_commands(self, after: float = -np.inf) -> list[Command]:
        with self.lock:
            return [c for c in self.commands if c.t > after]

    def mark(self) -> int:
        """A bookmark: reports after it are those of what happens next."""
        with self.lock:
            return len(self.reports)

    def get_reports(self, name: str = CONTROLLER, since: int = 0) -> list[Report]:
        with self.lock:
            return [r for r in self.reports[since:] if r.name == name]

    def events(self, status: str, since: int = 0) -> list[Report]:
        """The controller's status changes to ``status`` (stamped with their tick's time)."""
        return [
            r
            for r in self.get_reports(CONTROLLER, since)
            if not r.periodic and r.values.get('status') == status
        ]

    def latest(self, name: str = CONTROLLER, since: int = 0) -> Report | None:
        reports = [r for r in self.get_reports(name, since) if r.periodic]
        return reports[-1] if reports else None

    def chunk_count(self) -> int:
        with self.lock:
            return len(self.chunks)


class Graph:
    """A graph YAML with parameter ``overrides`` per node, its groups in their own processes."""

    def __init__(
        self, graph: str, tmp: Path, overrides: dict[str, dict[str, Any]] | None = None
    ) -> None:
        spec = yaml.safe_load((CONFIG / 'graphs' / graph).read_text())
        for node in spec['nodes']:
            extra = {**OBSERVE.get(node['name'], {}), **(overrides or {}).get(node['name'], {})}
            if extra:
                node['parameters'] = [*node.get('parameters', []), extra]
        self.name = spec['name']
        self.groups = list(dict.fromkeys(n.get('process', 'main') for n in spec['nodes']))
        self.path = tmp / graph
        self.path.write_text(yaml.safe_dump(spec))
        self.logs = tmp / f'{self.name}_logs'
        self.logs.mkdir(exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self._starts: dict[str, int] = {}
        atexit.register(self.stop)  # the groups are sessions of their own: never leave them

    def start(self, *groups: str) -> None:
        for group in groups or self.groups:
            n = self._starts[group] = self._starts.get(group, 0) + 1
            log = open(self.logs / f'{group}_{n}.log', 'w')  # noqa: SIM115 (the child's)
            self.procs[group] = subprocess.Popen(
                [sys.executable, '-m', 'vla_ros_common.runner', str(self.path),
                 '--config-dir', str(CONFIG), '--group', group],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
            )  # fmt: skip
            log.close()

    def kill(self, group: str) -> None:
        """``kill -9`` of the group's whole process group; returns when it is gone."""
        proc = self.procs[group]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30.0)

    def interrupt(self, group: str) -> int:
        """Ctrl-C the group (its orderly shutdown); returns its exit code."""
        proc = self.procs[group]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        return proc.wait(timeout=30.0)

    def alive(self, group: str) -> bool:
        return self.procs[group].poll() is None

    def log(self, group: str) -> str:
        n = self._starts.get(group, 0)
        path = self.logs / f'{group}_{n}.log'
        return path.read_text()[-3000:] if path.is_file() else ''

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15.0)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15.0)


@dataclass
class Rig:
    """A running graph, the probe watching it, and where the controller takes its chunks."""

    graph: Graph
    probe: Probe
    chunk_topic: str
    _publishers: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def open(cls, graph: str, tmp: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Rig:
        """Start ``graph`` with a probe of its own; returns once the controller tracks."""
        probe = Probe.start()
        rig = cls(Graph(graph, tmp, overrides), probe, CHUNK_TOPICS[graph])
        rig.graph.start()
        if not rig.tracking():
            logs = '\n'.join(f'--- {g}\n{rig.graph.log(g)}' for g in rig.graph.groups)
            rig.close()
            raise RuntimeError(f'{graph}: the controller never tracked\n{logs}')
        return rig

    def close(self) -> None:
        self.graph.stop()
        self.probe.close()

    def publisher(self, msg_type: type, topic: str, profile: QoSProfile):
        """One publisher per topic and reliability, matched: the first use waits until a
        subscriber has been discovered, and a moment more for it to discover the publisher."""
        key = (topic, str(profile.reliability))
        if key not in self._publishers:
            pub = self.probe.node.create_publisher(msg_type, topic, profile)
            wait_for(lambda: pub.get_subscription_count() > 0)
            time.sleep(0.5)
            self._publishers[key] = pub
        return self._publishers[key]

    def fresh_report(self, name: str = CONTROLLER) -> Report | None:
        mark = self.probe.mark()
        return wait_for(lambda: self.probe.latest(name, mark))

    def tracking(self, since: int = 0) -> Report | None:
        """The first controller report after ``since`` that says it tracks: the status change, or
        a periodic report (a restarted controller's first events may go out before this probe
        has discovered its new publisher)."""

        def first() -> Report | None:
            reports = self.probe.get_reports(CONTROLLER, since)
            return next((r for r in reports if r.values.get('status') == 'track'), None)

        return wait_for(first)

    def reset(self) -> bool:
        client = self.probe.node.create_client(Trigger, 'control/reset')
        if not client.wait_for_service(timeout_sec=WAIT):
            return False
        future = client.call_async(Trigger.Request())
        return bool(wait_for(future.done)) and future.result().success

    def restart(self, group: str) -> tuple[int, float]:
        """Start ``group`` again: (report bookmark, sim time) from just before."""
        mark, t = self.probe.mark(), self.probe.sim_now()
        self.graph.start(group)
        return mark, t


def make_tiny_export(out: Path) -> Path:
    """An exported flow policy for the sim arm (its joints and cameras), untrained: its chunks
    hold the arm near where it is, inside every limit."""
    from vla_learning.testing import tiny_export

    return tiny_export(out, joint_names=JOINTS, horizon=16, hold_still=True)


def deploy_overrides(export: Path) -> dict[str, dict[str, object]]:
    """The deploy graph on ``export``; one episode for the whole suite (the untrained policy
    never succeeds, and each time-out reset teleports the arm, which is no fault)."""
    return {
        'policy': {'artifact': str(export), 'instruction_encoder': 'hashed', 'num_threads': 1},
        'sim': {'task.time_limit_s': 600.0},
    }
