"""The backend interface: ``load`` an artifact, ``warm_up``, ``infer(observation) -> ActionChunk``.

A backend only has to turn model inputs into the raw chunk (:meth:`InferenceBackend._run`);
everything around it is shared: image layout and scaling, the instruction embedding (encoded
once per distinct instruction, cached), the flow noise (seeded), and wrapping the result into a
time-stamped :class:`vla_core.chunk.ActionChunk`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
import statistics
import time
from typing import ClassVar

import numpy as np

from vla_core.chunk import ActionChunk
from vla_core.cli import InputError
from vla_core.config import Config, param
from vla_learning.spec import PolicySpec

__all__ = ['ArtifactError', 'BackendConfig', 'BackendError', 'InferenceBackend', 'Observation']

InstructionEncoderFn = Callable[[str], np.ndarray]


class BackendError(RuntimeError):
    """The artifact cannot be loaded or run by this backend."""


class ArtifactError(BackendError, InputError):
    """The artifact the user named is missing, not an export, or not the model its spec
    describes: a user error (one line, exit code 2, in the CLIs)."""


@dataclass(frozen=True)
class Observation:
    """What the policy needs at one instant; ``stamp`` is the time the images were taken."""

    stamp: float  # [s]
    images: np.ndarray  # (N_cam, S, S, 3) uint8 RGB, or float32 in [0, 1]; cameras in spec order
    state: np.ndarray  # (state_dim,) joint positions in the spec's joint order
    instruction: str = ''
    lang_emb: np.ndarray | None = None  # (lang_dim,) precomputed; else instruction is encoded
    noise: np.ndarray | None = None  # (H, A) flow noise override (tests, parity checks)


@dataclass(frozen=True, kw_only=True)
class BackendConfig(Config):
    num_threads: int = param(2, description='CPU threads for inference', range=(1, 256))
    noise_seed: int = param(0, description='seed of the flow noise stream', range=(0, 2**31 - 1))
    warmup_iterations: int = param(3, description='warm-up inferences', range=(0, 1000))


class InferenceBackend(ABC):
    """One way of running an exported policy. Subclasses implement ``_load`` and ``_run``."""

    name: ClassVar[str] = ''

    def __init__(
        self,
        config: BackendConfig | None = None,
        instruction_encoder: InstructionEncoderFn | None = None,
    ) -> None:
        self.config = config or self.default_config()
        self._encoder = instruction_encoder
        self._spec: PolicySpec | None = None
        self._rng = np.random.default_rng(self.config.noise_seed)
        self._sequence = 0
        self.last_latency_s = float('nan')

    @classmethod
    def default_config(cls) -> BackendConfig:
        return BackendConfig()

    # ---- the interface ------------------------------------------------------------------
    def load(self, artifact: str | Path) -> PolicySpec:
        """Load the model; returns its spec (joint names, dt, horizon, input sizes)."""
        self._spec = self._load(Path(artifact))
        return self._spec

    def warm_up(self, iterations: int | None = None) -> float:
        """Run on zero inputs (allocations, kernel selection); returns the median latency [s]."""
        n = self.config.warmup_iterations if iterations is None else iterations
        spec = self.spec
        feeds = {k: np.zeros(s, np.float32) for k, s in spec.input_shapes(1).items()}
        times = []
        for _ in range(max(1, n)):
            t0 = time.perf_counter()
            self._run(feeds)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def infer(self, obs: Observation) -> ActionChunk:
        """One chunk for ``obs``: targets for ``obs.stamp + i * dt``."""
        spec = self.spec
        feeds = self.prepare_feeds(obs)
        t0 = time.perf_counter()
        actions = self._run(feeds)
        self.last_latency_s = time.perf_counter() - t0
        if actions.shape != spec.output_shape(1):
            raise BackendError(f'model returned {actions.shape}, expected {spec.output_shape(1)}')
        self._sequence += 1
        return ActionChunk(
            stamp=obs.stamp,
            dt=spec.dt,
            joint_names=spec.joint_names,
            targets=actions[0],
            source='policy',
            sequence=self._sequence,
        )

    # ---- shared plumbing ----------------------------------------------------------------
    @property
    def spec(self) -> PolicySpec:
        if self._spec is None:
            raise BackendError(f'{self.name} backend: load() first')
        return self._spec

    def prepare_feeds(self, obs: Observation) -> dict[str, np.ndarray]:
        """Model inputs ``{name: (1, ...)}`` float32 from one observation."""
        spec = self.spec
        s = spec.image_size
        images = np.asarray(obs.images)
        if images.shape != (spec.num_cameras, s, s, 3):
            raise BackendError(
                f'images must be (N_cam={spec.num_cameras}, {s}, {s}, 3), got {images.shape}'
            )
        if images.dtype == np.uint8:
            images = images.astype(np.float32) * (1.0 / 255.0)
        feeds = {
            'images': np.ascontiguousarray(images.transpose(0, 3, 1, 2)[None], dtype=np.float32),
            'state': _row(obs.state, spec.state_dim, 'state'),
            'lang_emb': _row(self._lang_emb(obs), spec.lang_dim, 'lang_emb'),
        }
        if spec.uses_noise:
            shape = (spec.horizon, spec.action_dim)
            noise = obs.noise if obs.noise is not None else self._rng.standard_normal(shape)
            feeds['noise'] = np.asarray(noise, np.float32).reshape(1, *shape)
        return {name: feeds[name] for name in spec.inputs}

    def _lang_emb(self, obs: Observation) -> np.ndarray:
        if obs.lang_emb is not None:
            return obs.lang_emb
        if self._encoder is None:
            # Lazily: importing sentence-transformers costs seconds; skip it when unused.
            from vla_learning.language import MiniLMInstructionEncoder

            self._encoder = MiniLMInstructionEncoder()
        return self._encoder(obs.instruction)

    # ---- for subclasses -----------------------------------------------------------------
    @abstractmethod
    def _load(self, artifact: Path) -> PolicySpec:
        """Load the model from ``artifact``; return its spec."""

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """``feeds`` as :meth:`prepare_feeds` makes them -> raw actions ``(B, H, A)`` float."""


def _row(x: np.ndarray, dim: int, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.shape != (dim,):
        raise BackendError(f'{name} must have {dim} values, got {x.shape[0]}')
    return x[None]


def resolve_export_dir(artifact: Path) -> tuple[Path, PolicySpec, Path]:
    """``(directory, spec, model path)`` from an export directory or a file inside it."""
    if not artifact.exists():
        raise ArtifactError(f'{artifact}: no such export directory or model file')
    directory = artifact if artifact.is_dir() else artifact.parent
    try:
        spec = PolicySpec.load(directory)
    except FileNotFoundError:
        raise ArtifactError(
            f'{directory}: no policy_spec.json (not an export, or its parity check failed)'
        ) from None
    return directory, spec, directory / spec.model_file


def verify_model_hash(model: Path, spec: PolicySpec) -> None:
    """Refuse a model file that is not the one the spec (and its parity check) describes."""
    from vla_learning.spec import sha256_file

    if not model.is_file():
        raise ArtifactError(f'{model}: missing')
    if spec.model_sha256 and sha256_file(model) != spec.model_sha256:
        raise ArtifactError(f'{model}: sha256 differs from policy_spec.json; re-export')
