"""The parity gate: the exported model must reproduce PyTorch on recorded observations."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vla_learning.data.dataset import RecordedObservations
from vla_learning.policies.base import Policy

__all__ = ['ParityError', 'ParityReport', 'check_parity', 'parity_feeds']

DEFAULT_ATOL = 1e-3  # [rad] raw joint-target units
DEFAULT_MIN_COSINE = 0.9999


class ParityError(RuntimeError):
    """The exported model disagrees with PyTorch beyond the thresholds."""


@dataclass(frozen=True)
class ParityReport:
    num_samples: int
    max_abs_error: float  # over every sample, step and joint
    mean_abs_error: float
    min_cosine: float  # worst per-sample cosine similarity of the flattened chunks
    atol: float
    min_cosine_required: float
    passed: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    def summary(self) -> str:
        verdict = 'PASS' if self.passed else 'FAIL'
        return (
            f'parity {verdict} on {self.num_samples} observations: max|err|='
            f'{self.max_abs_error:.3e} (<= {self.atol:g}), mean|err|={self.mean_abs_error:.3e}, '
            f'min cosine={self.min_cosine:.8f} (>= {self.min_cosine_required})'
        )


def parity_feeds(
    observations: RecordedObservations, input_names: tuple[str, ...], horizon: int, action_dim: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The model inputs for every recorded observation; noise drawn from ``seed``."""
    feeds = {
        'images': observations.images_float(),
        'state': observations.state.astype(np.float32),
        'lang_emb': observations.lang_emb.astype(np.float32),
    }
    if 'noise' in input_names:
        rng = np.random.default_rng(seed)
        feeds['noise'] = rng.standard_normal((len(observations), horizon, action_dim)).astype(
            np.float32
        )
    return {name: feeds[name] for name in input_names}


def compare(
    reference: np.ndarray, candidate: np.ndarray, atol: float, min_cosine: float
) -> ParityReport:
    """Both ``(N, H, A)``."""
    if reference.shape != candidate.shape:
        raise ParityError(f'shape mismatch: {reference.shape} vs {candidate.shape}')
    err = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    max_err = float(err.max()) if err.size else 0.0
    worst_cos = float(cos.min()) if cos.size else 1.0
    finite = bool(np.all(np.isfinite(candidate)))
    return ParityReport(
        num_samples=len(reference),
        max_abs_error=max_err,
        mean_abs_error=float(err.mean()) if err.size else 0.0,
        min_cosine=worst_cos,
        atol=atol,
        min_cosine_required=min_cosine,
        passed=finite and max_err <= atol and worst_cos >= min_cosine,
    )


@torch.no_grad()
def check_parity(
    policy: Policy,
    onnx_path: str | Path,
    observations: RecordedObservations,
    atol: float = DEFAULT_ATOL,
    min_cosine: float = DEFAULT_MIN_COSINE,
    seed: int = 0,
    num_threads: int = 2,
    raise_on_failure: bool = False,
) -> ParityReport:
    """Run PyTorch and ONNX Runtime (CPU) on the same inputs and compare the chunks."""
    import onnxruntime as ort

    from vla_learning.export.onnx_export import onnx_inputs_of

    names = onnx_inputs_of(policy)
    h, a = policy.chunk_shape
    feeds = parity_feeds(observations, names, h, a, seed)
    policy = policy.eval().cpu()
    reference = policy.predict_chunk(
        *(torch.from_numpy(feeds[n]) for n in ('images', 'state', 'lang_emb')),
        noise=torch.from_numpy(feeds['noise']) if 'noise' in feeds else None,
    ).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    session = ort.InferenceSession(str(onnx_path), options, providers=['CPUExecutionProvider'])
    (candidate,) = session.run(None, feeds)
    report = compare(reference, candidate, atol, min_cosine)
    if raise_on_failure and not report.passed:
        raise ParityError(report.summary())
    return report
