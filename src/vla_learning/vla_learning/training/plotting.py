"""Loss-curve plots (PNG), drawn headless."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['plot_history']


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = '') -> Path:
    """Train loss (raw and smoothed) and validation metrics against the step, log scale."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    pretrain = np.asarray(history.get('scene_pretrain_loss', []))
    fig, axes = plt.subplots(1, 3 if pretrain.size else 2, figsize=(16 if pretrain.size else 11, 4))
    ax = axes[0]
    _plot_noisy(ax, history.get('step', []), history.get('train_loss', []), 'C0', 'train loss')
    if history.get('val_step'):
        ax.plot(history['val_step'], history['val_loss'], 'o-', color='C1', label='val loss')
    ax.set_yscale('log')
    ax.set_xlabel('step')
    ax.set_ylabel('training objective')
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    if history.get('val_step'):
        ax.plot(
            history['val_step'], history['val_action_mse'], 'o-', color='C2',
            label='val chunk MSE (sampled, normalized units)',
        )  # fmt: skip
        ax.axhline(1.0, ls='--', color='gray', label='predict-the-mean baseline (~1)')
    ax.set_yscale('log')
    ax.set_xlabel('step')
    ax.legend()
    ax.grid(alpha=0.3)
    if pretrain.size:
        ax = axes[2]
        _plot_noisy(ax, np.arange(1, pretrain.size + 1), pretrain, 'C3', 'localizer loss')
        ax.set_yscale('log')
        ax.set_xlabel('pretraining step (before step 0)')
        ax.set_ylabel('scene localizer, (error / 0.1 m)^2')
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_noisy(
    ax: Any, steps: Sequence[float], values: Sequence[float], colour: str, label: str
) -> None:
    """A per-step curve, faint, under its running mean."""
    steps, values = np.asarray(steps), np.asarray(values)
    if not values.size:
        return
    ax.plot(steps, values, alpha=0.3, color=colour, label=label)
    k = max(1, min(25, values.size // 10))
    smooth = np.convolve(values, np.ones(k) / k, mode='valid')
    ax.plot(steps[k - 1 :], smooth, color=colour, label=f'{label} ({k}-step mean)')
