"""TensorRT backend (TensorRT 10 Python API): engine build from the exported ONNX, cached.

    backend = TensorRTBackend(TensorRTConfig(precision='fp16', cache_dir='~/.cache/vla/engines'))
    backend.load('exports/flow')      # builds (progress bar) or reuses a cached engine
    vla engine --export-dir exports/flow --precision int8   # prebuild on the Jetson

FP16 builds need nothing else; INT8 calibrates (entropy calibrator) on the recorded observations
that the export wrote (``observations.npz``). Device buffers are torch CUDA tensors, so no
pycuda / cuda-python is needed. Everything that does not need TensorRT itself (cache keys, I/O
binding plans, calibration batches) is plain Python and tested without a GPU.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
import hashlib
import logging
from pathlib import Path
import sys
from typing import Any, ClassVar

import numpy as np

from vla_core.cli import cli_main
from vla_core.config import param
from vla_learning.spec import PolicySpec
from vla_policy.backends.base import (
    BackendConfig,
    BackendError,
    InferenceBackend,
    resolve_export_dir,
    verify_model_hash,
)
from vla_policy.engine_cache import PRECISIONS, EngineCache, EngineCacheKey

__all__ = [
    'IOTensor',
    'TensorRTBackend',
    'TensorRTConfig',
    'build_engine',
    'calibration_batches',
    'engine_cache_key',
    'onnx_io_tensors',
    'plan_bindings',
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TensorRTConfig(BackendConfig):
    precision: str = param('fp16', description='engine precision', choices=PRECISIONS)
    cache_dir: str = param('~/.cache/vla_policy/engines', description='engine cache directory')
    max_batch: int = param(
        1, description='largest batch of the optimization profile', range=(1, 64)
    )
    workspace_mib: int = param(1024, description='builder workspace [MiB]', range=(16, 65536))
    opt_level: int = param(3, description='builder optimization level', range=(0, 5))
    gpu_name: str = param('', description='override the GPU name used in the cache key')
    calibration_file: str = param(
        '', description='INT8 observations .npz (empty: observations.npz of the export)'
    )
    calibration_batch: int = param(8, description='INT8 calibration batch size', range=(1, 256))
    progress: bool = param(True, description='progress bar while building')


# ---- pure helpers (tested without TensorRT) ----------------------------------------------


@dataclass(frozen=True)
class IOTensor:
    """One engine input or output as TensorRT reports it; ``-1`` marks a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. 'float32'
    is_input: bool


def onnx_io_tensors(onnx_path: str | Path) -> list[IOTensor]:
    """The I/O an engine built from ``onnx_path`` will expose (what the parser sees)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    out = []
    for values, is_input in ((graph.input, True), (graph.output, False)):
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            shape = tuple(d.dim_value if d.HasField('dim_value') else -1 for d in t.shape.dim)
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
            out.append(IOTensor(v.name, shape, dtype, is_input))
    return out


def plan_bindings(
    spec: PolicySpec, io: list[IOTensor], batch: int = 1
) -> dict[str, tuple[int, ...]]:
    """Concrete shape of every engine tensor for ``batch``; raises if engine and spec disagree."""
    expected = {**spec.input_shapes(batch), spec.output: spec.output_shape(batch)}
    inputs = {t.name for t in io if t.is_input}
    outputs = {t.name for t in io if not t.is_input}
    if inputs != set(spec.inputs) or outputs != {spec.output}:
        raise BackendError(
            f'engine I/O {sorted(inputs)} -> {sorted(outputs)} does not match the spec '
            f'{list(spec.inputs)} -> {spec.output}'
        )
    plan = {}
    for t in io:
        want = expected[t.name]
        if t.dtype != 'float32':
            raise BackendError(f'{t.name}: engine dtype {t.dtype}, expected float32')
        if len(t.shape) != len(want) or any(
            d not in (-1, w) for d, w in zip(t.shape, want, strict=True)
        ):
            raise BackendError(f'{t.name}: engine shape {t.shape} cannot take {want}')
        plan[t.name] = want
    return plan


def calibration_batches(
    spec: PolicySpec, observations_path: str | Path, batch: int, seed: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """INT8 calibration feeds from recorded observations (full batches only)."""
    from vla_learning.data.dataset import RecordedObservations
    from vla_learning.export.parity import parity_feeds

    obs = RecordedObservations.load(observations_path)
    feeds = parity_feeds(obs, spec.inputs, spec.horizon, spec.action_dim, seed)
    for start in range(0, len(obs) - batch + 1, batch):
        yield {k: np.ascontiguousarray(v[start : start + batch]) for k, v in feeds.items()}


def engine_cache_key(
    spec: PolicySpec,
    precision: str,
    trt_version: str,
    gpu_name: str,
    calibration_sha256: str = '',
    max_batch: int = 1,
    workspace_mib: int = 1024,
    opt_level: int = 3,
) -> EngineCacheKey:
    options = f'max_batch={max_batch};workspace_mib={workspace_mib};opt_level={opt_level}'
    return EngineCacheKey(
        model_sha256=spec.model_sha256,
        trt_version=trt_version,
        gpu_name=gpu_name,
        precision=precision,
        calibration_sha256=calibration_sha256 if precision == 'int8' else '',
        builder_options=options,
    )


# ---- TensorRT-only parts -------------------------------------------------------------------


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as err:
        raise BackendError(
            'the tensorrt backend needs TensorRT 10 (JetPack 6 / pip tensorrt)'
        ) from err
    if int(trt.__version__.split('.')[0]) < 10:
        raise BackendError(f'TensorRT {trt.__version__} found; this backend needs 10.x')
    return trt


def _gpu_name() -> str:
    import torch

    if not torch.cuda.is_available():
        raise BackendError('the tensorrt backend needs a CUDA device')
    return torch.cuda.get_device_name(torch.cuda.current_device())


def _progress_monitor(trt: Any, enabled: bool) -> Any:
    """A ``trt.IProgressMonitor`` drawing nested tqdm bars, one per build phase."""
    from tqdm.auto import tqdm

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._bars[phase_name] = tqdm(
                total=num_steps, desc=phase_name, leave=False, position=len(self._bars),
                disable=not enabled,
            )  # fmt: skip

        def step_complete(self, phase_name: str, step: int) -> bool:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return _Monitor()


def _calibrator(
    trt: Any, spec: PolicySpec, batches: list[dict[str, np.ndarray]], cache: Path
) -> Any:
    import torch

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter = iter(batches)
            self._device: dict[str, torch.Tensor] = {}

        def get_batch_size(self) -> int:
            return int(next(iter(batches[0].values())).shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            feeds = next(self._iter, None)
            if feeds is None:
                return None
            self._device = {n: torch.from_numpy(feeds[n]).cuda() for n in names}
            return [int(self._device[n].data_ptr()) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(bytes(data))

    return _EntropyCalibrator()


def build_engine(
    onnx_path: Path,
    spec: PolicySpec,
    config: TensorRTConfig,
    calibration: list[dict[str, np.ndarray]] | None = None,
    calibration_cache: Path | None = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (TensorRT 10 API)."""
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '\n'.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f'TensorRT could not parse {onnx_path}:\n{errors}')
    bconfig = builder.create_builder_config()
    bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mib << 20)
    bconfig.builder_optimization_level = config.opt_level
    profile = builder.create_optimization_profile()
    opt = spec.input_shapes(1)
    # Calibration runs inside the profile's shape range, so the profile must admit its batch.
    calib = config.calibration_batch if config.precision == 'int8' else 1
    most = spec.input_shapes(max(config.max_batch, calib))
    for name in spec.inputs:
        profile.set_shape(name, opt[name], opt[name], most[name])
    bconfig.add_optimization_profile(profile)
    if config.precision in ('fp16', 'int8'):
        bconfig.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
    if config.precision == 'int8':
        if not calibration:
            raise BackendError('INT8 needs calibration batches (recorded observations)')
        bconfig.set_flag(trt.BuilderFlag.INT8)
        bconfig.int8_calibrator = _calibrator(
            trt, spec, calibration, calibration_cache or onnx_path.with_suffix('.calib')
        )
        bconfig.set_calibration_profile(profile)
    bconfig.progress_monitor = _progress_monitor(trt, config.progress)
    _log.info(
        'building %s TensorRT engine from %s (minutes on a Jetson)', config.precision, onnx_path
    )
    serialized = builder.build_serialized_network(network, bconfig)
    if serialized is None:
        raise BackendError('TensorRT engine build failed (see the TensorRT log above)')
    return bytes(serialized)


class TensorRTBackend(InferenceBackend):
    """Loads an export directory; builds or reuses the cached engine; runs on CUDA."""

    name: ClassVar[str] = 'tensorrt'
    config: TensorRTConfig

    @classmethod
    def default_config(cls) -> TensorRTConfig:
        return TensorRTConfig()

    def prepare_engine(self, artifact: Path) -> tuple[PolicySpec, bytes, bool]:
        """``(spec, engine bytes, built_now)``: from the cache when its key matches exactly."""
        trt = _import_tensorrt()
        directory, spec, model = resolve_export_dir(artifact)
        verify_model_hash(model, spec)
        cfg = self.config
        calibration: list[dict[str, np.ndarray]] | None = None
        calib_sha = ''
        if cfg.precision == 'int8':
            calib_file = Path(cfg.calibration_file or directory / 'observations.npz')
            calib_sha = hashlib.sha256(calib_file.read_bytes()).hexdigest()
            calibration = list(calibration_batches(spec, calib_file, cfg.calibration_batch))
        key = engine_cache_key(
            spec, cfg.precision, trt.__version__, cfg.gpu_name or _gpu_name(), calib_sha,
            cfg.max_batch, cfg.workspace_mib, cfg.opt_level,
        )  # fmt: skip
        cache = EngineCache(Path(cfg.cache_dir).expanduser())
        engine, built = cache.get_or_build(
            key,
            lambda: build_engine(
                model, spec, cfg, calibration, cache.directory / f'{key.digest()}.calib'
            ),
        )
        return spec, engine, built

    def _load(self, artifact: Path) -> PolicySpec:
        import torch

        trt = _import_tensorrt()
        spec, engine_bytes, _ = self.prepare_engine(artifact)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise BackendError('TensorRT could not deserialize the engine')
        self._context = self._engine.create_execution_context()
        io = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            io.append(
                IOTensor(
                    name=name,
                    shape=tuple(self._engine.get_tensor_shape(name)),
                    dtype=np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).name,
                    is_input=self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                )
            )
        plan = plan_bindings(spec, io, batch=1)
        # Static device buffers bound once; infer() copies into them (no per-call allocation).
        self._buffers = {
            n: torch.empty(s, dtype=torch.float32, device='cuda') for n, s in plan.items()
        }
        for name, buf in self._buffers.items():
            if name in spec.inputs:
                self._context.set_input_shape(name, tuple(buf.shape))
            self._context.set_tensor_address(name, int(buf.data_ptr()))
        self._stream = torch.cuda.Stream()
        self._torch = torch
        return spec

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.cuda.stream(self._stream):
            for name, value in feeds.items():
                self._buffers[name].copy_(torch.from_numpy(value), non_blocking=True)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError('TensorRT execution failed')
            out = self._buffers[self.spec.output].to('cpu', non_blocking=True)
        self._stream.synchronize()
        return out.numpy()


@cli_main('vla engine')
def main(argv: list[str] | None = None) -> int:
    """``vla engine``: build (or verify the cached) engine for an export directory."""
    p = argparse.ArgumentParser(prog='vla engine', description=main.__doc__)
    p.add_argument('--export-dir', required=True, type=Path)
    p.add_argument('--precision', default='fp16', choices=PRECISIONS)
    p.add_argument('--cache-dir', default=TensorRTConfig().cache_dir)
    p.add_argument('--max-batch', type=int, default=1)
    p.add_argument('--workspace-mib', type=int, default=1024)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    backend = TensorRTBackend(
        TensorRTConfig(
            precision=args.precision, cache_dir=args.cache_dir, max_batch=args.max_batch,
            workspace_mib=args.workspace_mib,
        )
    )  # fmt: skip
    _, engine, built = backend.prepare_engine(args.export_dir)
    print(f'{"built" if built else "reused cached"} {args.precision} engine ({len(engine)} bytes)')
    backend.load(args.export_dir)
    print(f'warm-up median latency: {backend.warm_up(20) * 1e3:.2f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
