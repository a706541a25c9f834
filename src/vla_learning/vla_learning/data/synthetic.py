"""A synthetic reaching task that needs vision, language and proprioception to solve.

Each scene has a red and a blue square at random places, seen by ``num_cameras`` cameras (the
second a transposed, dimmer view). The instruction names a square (or 'home'); the goal joint
configuration is a fixed smooth function of that square's image position; the expert chunk is a
first-order approach from the current joint state to the goal. Until the simulator's dataset
pipeline exists, this is what the training CLI learns.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import torch

from vla_core.config import Config, param
from vla_learning.data.dataset import ChunkDataset
from vla_learning.language import make_instruction_encoder
from vla_learning.policies.configuration_common import FeaturesConfig

__all__ = ['INSTRUCTIONS', 'SyntheticConfig', 'make_synthetic_datasets']

# (instruction, target): paraphrases make the policy rely on the embedding, not a token id.
INSTRUCTIONS: tuple[tuple[str, str], ...] = (
    ('reach the red square', 'red'),
    ('move the arm to the red block', 'red'),
    ('reach the blue square', 'blue'),
    ('go to the blue block', 'blue'),
    ('return to the home position', 'home'),
)


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig(Config):
    num_train: int = param(2048, description='training samples', range=(1, 1_000_000))
    num_val: int = param(256, description='validation samples', range=(1, 1_000_000))
    num_cameras: int = param(2, description='cameras', range=(1, 8))
    image_size: int = param(96, description='image side [px]', range=(16, 512))
    dof: int = param(6, description='joints (state and action size)', range=(1, 32))
    horizon: int = param(16, description='chunk length', range=(1, 256))
    dt: float = param(0.05, description='chunk step [s]', range=(1e-3, 1.0))
    tau: float = param(0.3, description='approach time constant [s]', range=(1e-3, 100.0))
    square_size: float = param(0.18, description='square side / image side', range=(0.02, 0.4))
    seed: int = param(0, description='data seed', range=(0, 2**31 - 1))
    language: str = param('minilm', description='instruction encoder', choices=('minilm', 'hashed'))


def make_synthetic_datasets(cfg: SyntheticConfig) -> tuple[ChunkDataset, ChunkDataset]:
    """``(train, val)``, disjoint draws from one seeded generator."""
    g = torch.Generator().manual_seed(cfg.seed)
    # A fixed random map from a square's position to a goal configuration (same for all seeds).
    g_map = torch.Generator().manual_seed(1234)
    goal_map = torch.randn(cfg.dof, 4, generator=g_map) * 0.8
    home = torch.randn(cfg.dof, generator=g_map) * 0.2
    encoder = make_instruction_encoder(cfg.language)
    texts = tuple(t for t, _ in INSTRUCTIONS)
    lang_table = torch.from_numpy(encoder.encode_many(list(texts))).float()
    features = FeaturesConfig(
        num_cameras=cfg.num_cameras,
        image_size=cfg.image_size,
        state_dim=cfg.dof,
        action_dim=cfg.dof,
        horizon=cfg.horizon,
        dt=cfg.dt,
        lang_dim=int(lang_table.shape[1]),
        joint_names=tuple(f'joint_{i + 1}' for i in range(cfg.dof)),
    )
    parts = []
    for n in (cfg.num_train, cfg.num_val):
        parts.append(_generate(cfg, n, g, goal_map, home, texts, lang_table, features))
    return parts[0], parts[1]


def _generate(
    cfg: SyntheticConfig,
    n: int,
    g: torch.Generator,
    goal_map: torch.Tensor,
    home: torch.Tensor,
    texts: tuple[str, ...],
    lang_table: torch.Tensor,
    features: FeaturesConfig,
) -> ChunkDataset:
    half = cfg.square_size / 2
    red = torch.rand(n, 2, generator=g) * (1 - cfg.square_size) + half  # centres in [0, 1]
    blue = torch.rand(n, 2, generator=g) * (1 - cfg.square_size) + half
    for _ in range(20):  # re-draw blue where it overlaps red
        overlap = ((red - blue).abs() < cfg.square_size).all(-1)
        if not overlap.any():
            break
        blue[overlap] = (
            torch.rand(int(overlap.sum()), 2, generator=g) * (1 - cfg.square_size) + half
        )
    scene = _render(cfg, red, blue, g)  # (N, 3, S, S) float
    views = [scene]
    for c in range(1, cfg.num_cameras):
        views.append((scene.transpose(-1, -2) if c % 2 else scene.flip(-1)) * (1.0 - 0.1 * c))
    images = (torch.stack(views, 1).clamp(0, 1) * 255).round().to(torch.uint8)

    which = torch.randint(len(texts), (n,), generator=g)
    target = torch.tensor([{'red': 0, 'blue': 1, 'home': 2}[t] for _, t in INSTRUCTIONS])[which]
    pos = torch.where((target == 0)[:, None], red, blue) * 2 - 1  # [-1, 1]
    feats = torch.cat([pos, pos[:, :1] * pos[:, 1:], torch.ones(n, 1)], 1)  # (N, 4)
    goal = torch.tanh(feats @ goal_map.T) * 1.2
    goal = torch.where((target == 2)[:, None], home.expand(n, -1), goal)
    state = (torch.rand(n, cfg.dof, generator=g) * 2 - 1) * 0.8
    steps = torch.arange(1, cfg.horizon + 1, dtype=torch.float32) * cfg.dt
    alpha = 1 - torch.exp(-steps / cfg.tau)  # (H,)
    actions = state[:, None] + (goal - state)[:, None] * alpha[None, :, None]
    return ChunkDataset(
        images=images,
        state=state.float(),
        instruction_index=which,
        instructions=texts,
        lang_table=lang_table,
        actions=actions.float(),
        features=features,
    )


def _render(
    cfg: SyntheticConfig, red: torch.Tensor, blue: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """``(N, 3, S, S)``: textured background with a red and a blue square."""
    n, s = red.shape[0], cfg.image_size
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    yy, xx = coords[:, None], coords[None, :]
    tint = 0.3 + 0.2 * torch.rand(n, 3, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    img = tint + 0.05 * torch.sin(6 * math.pi * (xx + yy) + phase)  # mild texture
    img = img + 0.03 * torch.randn(n, 3, s, s, generator=g)
    half = cfg.square_size / 2
    for centre, colour in ((red, (0.9, 0.1, 0.1)), (blue, (0.1, 0.2, 0.9))):
        cx, cy = centre[:, 0, None, None], centre[:, 1, None, None]
        mask = (((xx - cx).abs() < half) & ((yy - cy).abs() < half))[:, None]  # (N, 1, S, S)
        rgb = torch.tensor(colour).view(1, 3, 1, 1)
        img = torch.where(mask, rgb.expand(n, 3, s, s), img)
    return img
