"""pi0-style VLA: transformer trunk over the observation, flow-matching action expert.

Training (pi0 convention): ``x_t = t * noise + (1 - t) * actions``, target velocity
``u = noise - actions``, ``t ~ Beta``. Inference integrates ``dx/dt = v(x, t)`` from t=1 (noise) to
t=0 in ``num_steps`` Euler steps. The trunk runs once; only the expert runs per step, with
cross-attention to the trunk's output (the role of pi0's prefix KV cache).

``flow.prediction: actions`` (x-prediction) has the expert output the clean chunk instead; the
velocity ``(x_t - chunk) / t`` follows from the interpolation, training regresses on the chunk,
and the last Euler step lands on the expert's prediction. Measured in src/vla_learning/README.md.

``flow.expert: mlp`` replaces the transformer expert by an MLP over the whole chunk, conditioned
on the joints and the scene token (and, with ``mlp_reads_trunk``, the trunk's pooled memory);
without the trunk, no trunk is built (sim_flow_scene.yaml).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch
from torch import nn
import torch.nn.functional as F

from vla_learning.normalization import NormStats
from vla_learning.policies.base import Batch, Policy
from vla_learning.policies.configuration_policy import PolicyConfig
from vla_learning.policies.layers import Attention, TransformerBlock, sinusoidal_embedding
from vla_learning.policies.observation_encoder import ObservationEncoder

__all__ = ['FlowMatchingPolicy']


class ActionExpert(nn.Module):
    """Velocity field ``v(x_t (B, H, A), t (B,), memory (B, T, D)[, cond (B, 1, D)]) -> (B, H, A)``.

    ``cond`` (:meth:`Policy.head_condition`) is added to every action token.
    """

    def __init__(self, horizon: int, action_dim: int, dim: int, config: PolicyConfig) -> None:
        super().__init__()
        trunk = config.trunk
        self.dim = dim
        self.action_in = nn.Linear(action_dim, dim)
        # pi0 fuses action and time embeddings with an MLP rather than adding them.
        self.fuse = nn.Sequential(nn.Linear(2 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.pos = nn.Parameter(torch.randn(1, horizon, dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, trunk.num_heads, trunk.mlp_ratio, trunk.dropout, cross=True)
            for _ in range(config.flow.expert_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.action_out = nn.Linear(dim, action_dim)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        memory: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.action_in(x)
        t_emb = sinusoidal_embedding(t, self.dim)[:, None].expand(-1, x.shape[1], -1)
        h = self.fuse(torch.cat([h, t_emb], dim=-1)) + self.pos
        if cond is not None:
            h = h + cond
        for block in self.blocks:
            h = block(h, memory)
        return self.action_out(self.norm(h))


class MLPActionExpert(nn.Module):
    """The whole chunk at once: ``[x_t (H*A), t features, cond (D)[, trunk summary (D)]]`` ->
    ``(B, H, A)`` through an MLP; the same call as :class:`ActionExpert`.

    ``cond`` is :meth:`Policy.head_condition` (joints and scene token). With ``memory`` (the
    trunk's output) a learned query attention-pools it to one more input vector.
    """

    TIME_DIM = 64

    def __init__(self, horizon: int, action_dim: int, dim: int, config: PolicyConfig) -> None:
        super().__init__()
        flow = config.flow
        self.reads_trunk = flow.mlp_reads_trunk
        if self.reads_trunk:
            self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.norm_memory = nn.LayerNorm(dim)
            self.pool = Attention(dim, config.trunk.num_heads)
        widths = [horizon * action_dim + self.TIME_DIM + dim * (1 + self.reads_trunk)]
        widths += [flow.mlp_width] * flow.expert_layers
        body: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            body += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*body, nn.Linear(widths[-1], horizon * action_dim))

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        memory: torch.Tensor | None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if cond is None:
            raise ValueError('the mlp expert needs condition_head')
        parts = [x.flatten(1), sinusoidal_embedding(t, self.TIME_DIM), cond[:, 0]]
        if self.reads_trunk:
            if memory is None:
                raise ValueError("this mlp expert reads the trunk's memory")
            query = self.query.expand(x.shape[0], -1, -1)
            parts.append(self.pool(query, self.norm_memory(memory))[:, 0])
        return self.net(torch.cat(parts, -1)).reshape(x.shape)


class FlowMatchingPolicy(Policy):
    """Compact VLA with a flow-matching action expert."""

    uses_noise: ClassVar[bool] = True

    def __init__(self, config: PolicyConfig, stats: NormStats | None = None) -> None:
        super().__init__(config, stats)
        f = config.features
        self.encoder = (
            None if config.flow.expert == 'mlp' and not config.flow.mlp_reads_trunk
            else ObservationEncoder(
                f, config.vision, config.trunk, num_extra_tokens=self.num_scene_tokens
            )
        )  # fmt: skip
        expert = MLPActionExpert if config.flow.expert == 'mlp' else ActionExpert
        self.expert = expert(f.horizon, f.action_dim, config.trunk.d_model, config)
        self._build_head_condition()

    def _memory(
        self,
        images: torch.Tensor,
        state_n: torch.Tensor,
        lang_n: torch.Tensor,
        scene: torch.Tensor | None,
        vision_features: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """The trunk's output, or None for an expert that reads none (there is no trunk then)."""
        if self.encoder is None:
            return None
        return self.encoder(images, state_n, lang_n, scene, vision_features=vision_features)

    def _sample_time(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        cfg = self.config.flow
        if cfg.time_sampling == 'beta':
            # Inverse-CDF from uniforms: torch's Beta sampler takes no generator, and every draw
            # must come from ``generator`` for resume to reproduce the loss trajectory.
            t = _beta_from_uniform(
                torch.rand(n, generator=generator), cfg.beta_alpha, cfg.beta_beta
            )
        else:
            t = torch.rand(n, generator=generator)
        return t * (1.0 - cfg.time_min) + cfg.time_min

    def compute_loss(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        actions = self.normalizer.normalize_actions(batch.actions, batch.state)
        b = actions.shape[0]
        noise = torch.randn(actions.shape, generator=generator).to(actions.device)
        t = self._sample_time(b, generator).to(actions.device)
        x_t = t[:, None, None] * noise + (1.0 - t[:, None, None]) * actions
        state_n = self.normalizer.normalize_state(batch.state)
        lang_n = self.normalizer.normalize_lang(batch.lang_emb)
        scene, scene_loss, logs = self.scene_tokens(
            batch.images, lang_n, self.scene_target(batch), generator
        )
        memory = self._memory(batch.images, state_n, lang_n, scene, batch.vision_features)
        out = self.expert(x_t, t, memory, self.head_condition(state_n, scene))
        target = actions if self.config.flow.prediction == 'actions' else noise - actions
        flow_mse = F.mse_loss(out, target)
        return flow_mse + scene_loss, {'flow_mse': float(flow_mse.detach()), **logs}

    def predict_chunk(
        self,
        images: torch.Tensor,
        state: torch.Tensor,
        lang_emb: torch.Tensor,
        noise: torch.Tensor | None = None,
        vision_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if noise is None:
            noise = self.sample_noise(state.shape[0]).to(state.device)
        lang_n = self.normalizer.normalize_lang(lang_emb)
        scene, _, _ = self.scene_tokens(images, lang_n)
        state_n = self.normalizer.normalize_state(state)
        memory = self._memory(images, state_n, lang_n, scene, vision_features)
        cond = self.head_condition(state_n, scene)
        steps = self.config.flow.num_steps
        dt = -1.0 / steps
        x = noise
        ones = torch.ones(state.shape[0], device=state.device, dtype=x.dtype)
        predicts_actions = self.config.flow.prediction == 'actions'
        # A Python loop: traced into an unrolled graph of ``steps`` expert calls on export.
        for k in range(steps):
            t = 1.0 - k / steps  # >= 1 / steps: the division below is safe
            out = self.expert(x, ones * t, memory, cond)
            # x_t = t * noise + (1 - t) * actions, so the velocity is (x_t - actions) / t.
            x = x + dt * ((x - out) / t if predicts_actions else out)
        return self.normalizer.unnormalize_actions(x, state)


def _beta_from_uniform(u: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Beta(alpha, beta) samples ``(n,)`` from uniforms ``u (n,)`` by inverting a tabulated CDF.

    A 2048-cell table is far finer than time sampling needs.
    """
    grid = torch.linspace(0.0, 1.0, 2049, dtype=torch.float64)
    mid = (grid[1:] + grid[:-1]) / 2
    pdf = mid.pow(alpha - 1) * (1 - mid).pow(beta - 1)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), pdf.cumsum(0)])
    cdf = cdf / cdf[-1]
    idx = torch.searchsorted(cdf, u.double().clamp(0, 1)).clamp(1, grid.numel() - 1)
    lo, hi = cdf[idx - 1], cdf[idx]
    frac = (u.double() - lo) / (hi - lo).clamp_min(1e-12)
    return (grid[idx - 1] + frac * (grid[idx] - grid[idx - 1])).float()
