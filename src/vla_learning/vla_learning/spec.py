"""The deployment contract of an exported policy (``policy_spec.json`` next to the model).

Torch-free on purpose: the inference backends read it on machines that may only have ONNX
Runtime or TensorRT. ONNX inputs, all float32, batch first::

    images   (B, N_cam, 3, S, S)  RGB in [0, 1] (ImageNet normalization is inside the graph)
    state    (B, state_dim)       raw joint positions, in ``joint_names`` order
    lang_emb (B, lang_dim)        all-MiniLM-L6-v2 embedding of the instruction (L2-normalized)
    noise    (B, H, action_dim)   standard normal, flow policies only

Output ``actions (B, H, action_dim)``: raw joint targets; target i applies at stamp + i * dt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ['SPEC_FILE', 'SPEC_FORMAT', 'PolicySpec', 'sha256_file']

SPEC_FORMAT = 'vla_learning.policy_spec/1'
SPEC_FILE = 'policy_spec.json'


@dataclass(frozen=True)
class PolicySpec:
    policy_type: str
    joint_names: tuple[str, ...]
    dt: float
    horizon: int
    action_dim: int
    state_dim: int
    num_cameras: int
    image_size: int
    lang_dim: int
    inputs: tuple[str, ...]
    output: str = 'actions'
    model_file: str = 'model.onnx'
    model_sha256: str = ''
    instruction_encoder: str = 'sentence-transformers/all-MiniLM-L6-v2'
    format: str = SPEC_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))
        object.__setattr__(self, 'inputs', tuple(self.inputs))
        if self.format != SPEC_FORMAT:
            raise ValueError(f'unsupported policy spec format {self.format!r}')
        if len(self.joint_names) != self.action_dim:
            raise ValueError('joint_names and action_dim disagree')

    @property
    def uses_noise(self) -> bool:
        return 'noise' in self.inputs

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shape of every model input for ``batch``."""
        s = self.image_size
        shapes = {
            'images': (batch, self.num_cameras, 3, s, s),
            'state': (batch, self.state_dim),
            'lang_emb': (batch, self.lang_dim),
            'noise': (batch, self.horizon, self.action_dim),
        }
        return {name: shapes[name] for name in self.inputs}

    def output_shape(self, batch: int = 1) -> tuple[int, int, int]:
        return (batch, self.horizon, self.action_dim)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SPEC_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> PolicySpec:
        """From ``policy_spec.json`` or the directory holding it."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        return cls(**json.loads(path.read_text()))

    @classmethod
    def from_features(cls, policy_type: str, features: Any, inputs: tuple[str, ...]) -> PolicySpec:
        """From a :class:`~vla_learning.policies.configuration_common.FeaturesConfig`."""
        return cls(
            policy_type=policy_type,
            joint_names=tuple(features.joint_names),
            dt=features.dt,
            horizon=features.horizon,
            action_dim=features.action_dim,
            state_dim=features.state_dim,
            num_cameras=features.num_cameras,
            image_size=features.image_size,
            lang_dim=features.lang_dim,
            inputs=inputs,
        )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
