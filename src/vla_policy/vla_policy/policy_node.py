"""The VLA policy on ROS: camera images + joint state + instruction -> ``policy/action_chunk``.

Lifecycle: ``configure`` loads the model with the chosen backend (ONNX Runtime by default,
PyTorch, or TensorRT) and warms it up, failing the transition with the reason (missing or
corrupted model, hash mismatch, camera count that does not match the model); ``activate`` starts
inference. Callbacks only store the newest messages; a worker thread infers from the latest
complete observation when a camera frame arrives, at most ``rate_hz`` times a second, so no
callback ever waits for the model. Each chunk is stamped
with the observation's time (the first camera's image stamp), so the controller compensates the
inference latency. Observations older than ``max_observation_age``, cameras and joint state
further apart than ``max_sync_skew``, or joint states that lack the model's joints are refused,
counted and reported on ``/diagnostics`` with the reason, together with inference latency p50/p99
and the chunk rate; so are bad inputs (NaN joint states, empty images) and inference errors, which
never end the worker thread. ``/diagnostics`` is ERROR while the node is active and camera frames
arrive but no chunk has come out for ``max_chunk_gap`` (not while inactive or waiting for an
instruction or for frames); its timer runs on the wall clock, so it reports when /clock stops too.

The instruction comes from the task (``instruction``, latched: the simulator republishes it at
every episode) unless an operator has sent one on ``instruction/operator``, which overrides it
until an empty one clears it (``python -m vla_policy.instruct "push the red block ..."``). A chunk
computed while the instruction changed (a new episode, a new command) is dropped, not published.
``inference_delay`` makes every inference take at least that long (a slower model, for latency
robustness figures); ``timing_log`` records each chunk's observation age and inference time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from vla_core.config import Config, param
from vla_interfaces.msg import ActionChunk as ActionChunkMsg
from vla_learning.preprocess import resize_square
from vla_ros_common import diagnostics, qos
from vla_ros_common.conversions import chunk_to_msg, stamp_to_seconds
from vla_ros_common.image import ImageEncodingError, image_to_numpy
from vla_ros_common.jsonl import JsonLinesLog
from vla_ros_common.node_main import run_node
from vla_ros_common.package_url import resolve_package_url
from vla_ros_common.params import declare_config

__all__ = ['ObservationError', 'PolicyNode', 'PolicyNodeConfig', 'assemble_observation']


@dataclass(frozen=True, kw_only=True)
class PolicyNodeConfig(Config):
    artifact: str = param(
        description='export directory (onnxruntime/tensorrt) or checkpoint .pt (torch); '
        'package://<package>/<path> for one shipped in a package',
        read_only=True,
    )
    backend: str = param(
        'onnxruntime', description='inference backend', read_only=True,
        choices=('onnxruntime', 'torch', 'tensorrt'),
    )  # fmt: skip
    cameras: tuple[str, ...] = param(
        ('scene_camera', 'wrist_camera'),
        description="cameras in the model's order (topics camera/<name>/image_raw)",
        read_only=True,
    )
    instruction: str = param('', description='instruction until one arrives on `instruction`')
    instruction_encoder: str = param(
        'minilm', description='must match training', choices=('minilm', 'hashed'), read_only=True
    )
    rate_hz: float = param(
        10.0, description='most chunks per second of camera time (frame stamps); a new camera '
        'frame starts one [Hz]',
        range=(0.1, 100.0),
    )  # fmt: skip
    inference_delay: float = param(
        0.0, description='every inference takes at least this long (wall time): a slower model, '
        'for latency-robustness evaluations [s]',
        range=(0.0, 10.0),
    )  # fmt: skip
    timing_log: str = param(
        '', description='append per chunk: observation stamp, its age when inference started, '
        'inference time (JSON lines)', read_only=True,
    )  # fmt: skip
    max_observation_age: float = param(
        0.5, description='refuse observations older than this [s]', range=(0.001, 60.0)
    )
    max_sync_skew: float = param(
        0.1, description='max stamp spread of images and joint state [s]', range=(0.0, 10.0)
    )
    num_threads: int = param(2, description='inference CPU threads', range=(1, 64), read_only=True)
    warmup_iterations: int = param(3, description='warm-up inferences', range=(0, 100))
    noise_seed: int = param(0, description='flow noise seed', range=(0, 2**31 - 1), read_only=True)
    diagnostics_period: float = param(1.0, description='[s]', range=(0.1, 60.0))
    max_chunk_gap: float = param(
        2.0,
        description='active, with an instruction and camera frames arriving, but no chunk for '
        'this long: /diagnostics ERROR [s]',
        range=(0.1, 600.0),
    )


class ObservationError(ValueError):
    """Why an observation was refused (stale, unsynchronised, wrong joints, bad image)."""


def assemble_observation(
    images: Sequence[Image | None],
    joint_state: JointState | None,
    joint_names: Sequence[str],
    image_size: int,
    now: float,
    max_age: float,
    max_skew: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(stamp, images (N, S, S, 3) uint8 RGB, state) or ObservationError saying why not."""
    if joint_state is None or any(m is None for m in images):
        raise ObservationError('waiting for the first image of every camera and a joint state')
    stamp = stamp_to_seconds(images[0].header.stamp)
    age = now - stamp
    if age > max_age:
        raise ObservationError(f'observation is {age:.3f} s old (max_observation_age {max_age})')
    stamps = [stamp_to_seconds(m.header.stamp) for m in images]
    stamps.append(stamp_to_seconds(joint_state.header.stamp))
    if max(stamps) - min(stamps) > max_skew:
        raise ObservationError(
            f'cameras and joint state are {max(stamps) - min(stamps):.3f} s apart '
            f'(max_sync_skew {max_skew})'
        )
    index = {name: i for i, name in enumerate(joint_state.name)}
    missing = [n for n in joint_names if n not in index]
    if missing or len(joint_state.position) != len(joint_state.name):
        raise ObservationError(
            f'joint_states lacks the model joints {missing}'
            if missing
            else 'joint_states has mismatched name and position lengths'
        )
    state = np.array([joint_state.position[index[n]] for n in joint_names], dtype=np.float32)
    if not np.all(np.isfinite(state)):
        raise ObservationError(f'joint state has NaN or Inf: {state.tolist()}')
    frames = []
    for msg in images:
        if msg.encoding not in ('rgb8', 'bgr8'):
            raise ObservationError(f"camera image encoding '{msg.encoding}': need rgb8 or bgr8")
        try:
            pixels = np.ascontiguousarray(image_to_numpy(msg))
            if msg.encoding == 'bgr8' and pixels.size:
                pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
            frames.append(resize_square(pixels, image_size))
        except (ImageEncodingError, ValueError) as err:  # bad size, empty (0x0) image
            raise ObservationError(f'camera image: {err}') from None
    return stamp, np.stack(frames), state


def _newest_complete_set(frames: list[list[Image]]) -> list[Image | None]:
    """The newest frame of the first camera that every other camera has a frame for (nearest
    stamp): cameras publish separately, so the newest frames may be one period apart."""
    if not frames or any(not f for f in frames):
        return [f[-1] if f else None for f in frames]
    for first in reversed(frames[0]):
        t = stamp_to_seconds(first.header.stamp)
        others = [
            min(f, key=lambda m: abs(stamp_to_seconds(m.header.stamp) - t)) for f in frames[1:]
        ]
        if all(stamp_to_seconds(m.header.stamp) == t for m in others):
            return [first, *others]
    return [f[-1] for f in frames]  # none match exactly: assemble_observation judges the skew


class PolicyNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__('policy', **kwargs)
        self._cfg = declare_config(self, PolicyNodeConfig)
        self._lock = threading.Lock()
        self._backend = None
        self._spec = None
        self._images: list[deque[Image]] = []  # a few recent frames per camera
        # Recent joint states: the one nearest the image stamp is paired with it (joint states
        # arrive ~10x faster than frames, so the newest one can be a camera period ahead).
        self._joint_states: deque[JointState] = deque(maxlen=200)
        self._instruction = self._cfg.value.instruction  # the task's
        self._operator_instruction = ''  # overrides the task's while not empty
        self._instruction_epoch = 0  # counts instruction messages: a chunk spans one epoch
        self._frame_floor = -np.inf  # newest frame stamp when the instruction last changed
        self._timing: JsonLinesLog | None = None
        self._running = threading.Event()
        self._frame_arrived = threading.Event()  # wakes the worker (see _run)
        self._worker: threading.Thread | None = None
        self._latencies: deque[float] = deque(maxlen=500)
        self._chunk_times: deque[float] = deque(maxlen=100)
        self._refusals: dict[str, int] = {}
        self._errors = 0  # inferences that raised
        self._last_error = ''
        self._last_problem = ''  # the newest refusal or error
        self._reported_problems = 0  # refusals + errors at the last report
        self._last_frame = float('nan')  # monotonic receipt of the newest camera frame
        self._active_since = float('nan')  # monotonic
        self._last_stamp = -np.inf  # the newest frame inferred, and under which instruction
        self._last_epoch = -1
        self._entities: list = []

    # --- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self._cfg.value
        try:
            self._load_backend(cfg)
        except Exception as err:  # every load failure must fail the transition with its reason
            self.get_logger().error(f'configure failed: {type(err).__name__}: {err}')
            self._backend = None
            return TransitionCallbackReturn.FAILURE
        self._images = [deque(maxlen=4) for _ in cfg.cameras]
        # Instructions first: when a new episode's instruction and its first frame are both
        # ready, the executor takes them in creation order, so that frame sees its instruction.
        self._entities.append(
            self.create_subscription(String, 'instruction', self._on_instruction, qos.LATCHED)
        )
        self._entities.append(self.create_subscription(
            String, 'instruction/operator', self._on_operator_instruction, qos.LATCHED
        ))  # fmt: skip
        for i, cam in enumerate(cfg.cameras):
            self._entities.append(self.create_subscription(
                Image, f'camera/{cam}/image_raw', lambda m, i=i: self._on_image(i, m),
                qos.SENSOR_IN, qos_overriding_options=qos.qos_overrides(),
            ))  # fmt: skip
        self._entities.append(self.create_subscription(
            JointState, 'joint_states', self._on_joint_state, qos.SENSOR_IN,
            qos_overriding_options=qos.qos_overrides(),
        ))  # fmt: skip
        if cfg.timing_log:
            self._timing = JsonLinesLog(cfg.timing_log)
        self._chunk_pub = self.create_lifecycle_publisher(
            ActionChunkMsg, 'policy/action_chunk', qos.ACTION_CHUNK
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', qos.DIAGNOSTICS)
        # On the wall clock: a simulator that stops /clock must not silence the report.
        self._diag_timer = self.create_timer(
            cfg.diagnostics_period,
            self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        return TransitionCallbackReturn.SUCCESS

    def _load_backend(self, cfg: PolicyNodeConfig) -> None:
        from vla_learning.language import make_instruction_encoder
        from vla_policy.backends import backend_config, make_backend

        config = backend_config(
            cfg.backend,
            num_threads=cfg.num_threads,
            noise_seed=cfg.noise_seed,
            warmup_iterations=cfg.warmup_iterations,
        )
        encoder = make_instruction_encoder(cfg.instruction_encoder)
        # Load the language model now, not at the first observation: that takes seconds, and a
        # chunk computed that late would arrive expired.
        encoder(cfg.instruction or 'warm up')
        backend = make_backend(cfg.backend, config=config, instruction_encoder=encoder)
        spec = backend.load(resolve_package_url(cfg.artifact))
        if spec.num_cameras != len(cfg.cameras):
            raise ValueError(
                f'the model takes {spec.num_cameras} cameras, parameter cameras names '
                f'{len(cfg.cameras)}: {list(cfg.cameras)}'
            )
        latency = backend.warm_up()
        self._backend, self._spec = backend, spec
        self.get_logger().info(
            f'loaded {spec.policy_type} policy ({cfg.backend}) from {cfg.artifact}: '
            f'{spec.num_cameras} cameras at {spec.image_size} px, {len(spec.joint_names)} joints, '
            f'H={spec.horizon} x {spec.dt} s; warm-up {1e3 * latency:.1f} ms'
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active_since = time.monotonic()
        self._running.set()
        self._worker = threading.Thread(target=self._run, name='policy_inference', daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._running.clear()
        self._frame_arrived.set()  # out of its wait now, not at the next period
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def _release(self) -> None:
        for entity in self._entities:
            self.destroy_subscription(entity)
        self._entities = []
        self._backend = None

    def destroy_node(self) -> None:
        self._stop_worker()
        if self._timing is not None:
            self._timing.close()
        super().destroy_node()

    # --- callbacks: store only ----------------------------------------------------------------

    def _on_image(self, index: int, msg: Image) -> None:
        with self._lock:
            self._images[index].append(msg)
            self._last_frame = time.monotonic()
        self._frame_arrived.set()

    def _on_joint_state(self, msg: JointState) -> None:
        with self._lock:
            self._joint_states.append(msg)

    def _new_instruction_epoch(self, had_one: bool) -> None:
        """(Under the lock.) Frames taken before an instruction replaced another belong to the
        old one; before the first, any frame is for it."""
        self._instruction_epoch += 1
        stamps = [stamp_to_seconds(m.header.stamp) for q in self._images for m in q]
        self._frame_floor = max(stamps, default=-np.inf) if had_one else -np.inf

    def _on_instruction(self, msg: String) -> None:
        with self._lock:
            self._new_instruction_epoch(bool(self._operator_instruction or self._instruction))
            self._instruction = msg.data
            operator = self._operator_instruction
        if operator:
            self.get_logger().info(f'task instruction "{msg.data}" (the operator\'s overrides it)')
        else:
            self.get_logger().info(f'instruction: "{msg.data}"')

    def _on_operator_instruction(self, msg: String) -> None:
        with self._lock:
            self._new_instruction_epoch(bool(self._operator_instruction or self._instruction))
            self._operator_instruction = msg.data.strip()
            task = self._instruction
        if msg.data.strip():
            self.get_logger().info(f'operator instruction: "{msg.data.strip()}"')
        else:
            self.get_logger().info(f'operator instruction cleared; the task\'s: "{task}"')

    # --- inference thread ---------------------------------------------------------------------

    def _refuse(self, reason: str) -> None:
        key = reason.split(' (')[0].split(':')[0]
        with self._lock:
            self._refusals[key] = self._refusals.get(key, 0) + 1
            self._last_problem = reason
        self.get_logger().warn(f'observation refused: {reason}', throttle_duration_sec=2.0)

    def _run(self) -> None:
        """Infer when a camera frame arrives, at most ``rate_hz`` chunks per second of frame
        stamps (camera time: a lockstep simulation runs faster than the wall clock); without
        frames, once a period anyway, so that missing or stale inputs are refused with their
        reason. A plain timer beat against cameras at the same rate and skipped frames (7.6
        chunks/s from 10 Hz cameras at ``rate_hz`` 10)."""
        period = 1.0 / self._cfg.value.rate_hz
        while self._running.is_set():
            self._frame_arrived.wait(timeout=period)
            self._frame_arrived.clear()
            if self._running.is_set():
                self._step_guarded()

    def _step_guarded(self) -> bool:
        """:meth:`_step`, counting and reporting what it raises: no input, however bad, and no
        backend failure may end the worker thread."""
        try:
            return self._step()
        except Exception as err:
            with self._lock:
                self._errors += 1
                self._last_error = self._last_problem = (
                    f'inference failed: {type(err).__name__}: {err}'
                )
            self.get_logger().error(self._last_error, throttle_duration_sec=2.0)
            return False

    def _step(self) -> bool:
        """One inference from the newest complete observation; whether a chunk was published."""
        cfg = self._cfg.value
        spec, backend = self._spec, self._backend
        if spec is None or backend is None:
            return False
        with self._lock:
            frames = [list(q) for q in self._images]
            joint_states = list(self._joint_states)
            instruction = self._operator_instruction or self._instruction
            epoch = self._instruction_epoch
            floor = self._frame_floor
        images = _newest_complete_set(frames)
        newest = images[0] if images else None
        # Nothing new since the last chunk, or sooner than rate_hz allows (1 % jitter tolerated);
        # a new instruction (a new episode) starts at once.
        soonest = self._last_stamp + 0.99 / cfg.rate_hz if epoch == self._last_epoch else -np.inf
        if newest is not None and (
            stamp_to_seconds(newest.header.stamp) < soonest
            or stamp_to_seconds(newest.header.stamp) <= floor
        ):
            return False
        joint_state = None
        if newest is not None and joint_states:
            target = stamp_to_seconds(newest.header.stamp)
            joint_state = min(
                joint_states, key=lambda m: abs(stamp_to_seconds(m.header.stamp) - target)
            )
        if not instruction:
            self._refuse('no instruction yet (topic `instruction` or parameter `instruction`)')
            return False
        now = self.get_clock().now().nanoseconds * 1e-9
        try:
            stamp, pixels, state = assemble_observation(
                images, joint_state, spec.joint_names, spec.image_size, now,
                cfg.max_observation_age, cfg.max_sync_skew,
            )  # fmt: skip
        except ObservationError as err:
            self._refuse(str(err))
            return False
        from vla_policy.backends.base import Observation

        started = time.perf_counter()
        chunk = backend.infer(
            Observation(stamp=stamp, images=pixels, state=state, instruction=instruction)
        )
        latency = time.perf_counter() - started
        if latency < cfg.inference_delay:
            time.sleep(cfg.inference_delay - latency)
            latency = cfg.inference_delay
        self._latencies.append(latency)
        self._last_stamp, self._last_epoch = stamp, epoch
        with self._lock:
            superseded = epoch != self._instruction_epoch
        if superseded:  # computed for an instruction that no longer holds
            self._refuse('instruction changed during inference; chunk dropped')
            return False
        self._chunk_times.append(time.monotonic())
        self._chunk_pub.publish(chunk_to_msg(chunk))
        if self._timing is not None:
            self._timing.append({
                # (a clock at 0 has not received /clock yet: no age to tell)
                'stamp': stamp, 'observation_age': now - stamp if now > 0 else None,
                'inference': latency,
                'sequence': chunk.sequence,
            })  # fmt: skip
        return True

    def _publish_diagnostics(self) -> None:
        if self._timing is not None:
            self._timing.flush()
        with self._lock:
            refusals = dict(self._refusals)
            errors, last_error = self._errors, self._last_error
        lat = np.array(self._latencies) * 1e3
        times = list(self._chunk_times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        values: dict[str, object] = {
            'chunks': len(times),
            'rate_hz': rate,
            'latency_p50_ms': float(np.percentile(lat, 50)) if lat.size else float('nan'),
            'latency_p99_ms': float(np.percentile(lat, 99)) if lat.size else float('nan'),
            'errors': errors,
            'last_error': last_error,
        }
        values.update({f'refused: {k}': v for k, v in refusals.items()})
        level, message = self._health(times[-1] if times else None)
        self._diag_pub.publish(diagnostics.diagnostic_array(
            self.get_clock().now().to_msg(),
            [diagnostics.status('policy: inference', level, message, values)],
        ))  # fmt: skip

    def _health(self, last_chunk: float | None) -> tuple[bytes, str]:
        """ERROR when active with an instruction and fresh camera frames but no chunk for
        ``max_chunk_gap``; WARN when observations were refused or inference failed since the
        last report; otherwise OK, saying what it waits for."""
        with self._lock:
            instruction, last_frame = self._instruction, self._last_frame
            problems = sum(self._refusals.values()) + self._errors
            last_problem = self._last_problem
        new_problems = problems > self._reported_problems
        self._reported_problems = problems
        if not self._running.is_set():
            return diagnostics.OK, 'inactive'
        if not instruction:
            return diagnostics.OK, 'no instruction yet (topic `instruction` or parameter)'
        now = time.monotonic()
        gap = self._cfg.value.max_chunk_gap
        if not now - last_frame <= gap:  # (nan: none yet)
            return diagnostics.WARN, f'no camera frame for {gap:g} s: waiting for inputs'
        silent = now - max(last_chunk or -np.inf, self._active_since)
        if silent > gap:
            why = last_problem or 'no complete observation'
            return diagnostics.ERROR, f'no chunk for {silent:.1f} s while frames arrive: {why}'
        if new_problems:
            return diagnostics.WARN, last_problem
        return diagnostics.OK, 'ok'


def main(args: Sequence[str] | None = None) -> int:
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
