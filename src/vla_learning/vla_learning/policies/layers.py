"""Small transformer blocks written with plain ops, so they export to ONNX and TensorRT as is."""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['Attention', 'Standardize', 'TransformerBlock', 'cell_centres', 'sinusoidal_embedding']


class Attention(nn.Module):
    """Multi-head attention ``(B, Tq, D) x (B, Tk, D) -> (B, Tq, D)``, unmasked."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, tq, d = x.shape
        tk = context.shape[1]
        q = self.q(x).reshape(b, tq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, tk, 2, self.num_heads, self.head_dim).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        # Explicit softmax attention rather than SDPA: one exporter-friendly graph everywhere.
        attn = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        attn = self.dropout(attn.softmax(dim=-1))
        y = (attn @ v).transpose(1, 2).reshape(b, tq, d)
        return self.out(y)


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to ``context``, MLP."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, cross: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout)
        self.cross = cross
        if cross:
            self.norm_x = nn.LayerNorm(dim)
            self.norm_ctx = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, T, D)``, ``context (B, Tc, D)`` when built with ``cross=True``."""
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h))
        if self.cross:
            if context is None:
                raise ValueError('cross-attention block needs a context')
            x = x + self.dropout(self.cross_attn(self.norm_x(x), self.norm_ctx(context)))
        return x + self.dropout(self.mlp(self.norm2(x)))


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 100.0) -> torch.Tensor:
    """``t (B,)`` in [0, 1] -> ``(B, dim)`` sin/cos features at log-spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.float()[:, None] * freqs[None, :] * (2.0 * math.pi)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def cell_centres(grid: int) -> torch.Tensor:
    """Centres of a ``grid x grid`` feature map in [-1, 1], ``(grid * grid, 2)`` as (x, y), row
    major: a spatial softmax over the flattened map times this is its expected position."""
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing='ij')
    return torch.stack([xx, yy], -1).reshape(-1, 2)


class Standardize(nn.Module):
    """``(x - mean) / std`` over ``(..., C, H, W)`` images, per channel (or one scalar)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float | tuple[float, ...], std: float | tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer('mean', torch.tensor(mean).reshape(-1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).reshape(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
