"""Loss-curve plots (PNG), drawn headless."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['plot_history']


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = '') -> Path:
    """Train loss (raw and smoothed) and validation metrics against the step, log scale."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.asarray(history.get('step', []))
    train = np.asarray(history.get('train_loss', []))
    ax = axes[0]
    if train.size:
        ax.plot(steps, train, alpha=0.3, color='C0', label='train loss')
        k = max(1, min(25, train.size // 10))
        smooth = np.convolve(train, np.ones(k) / k, mode='valid')
        ax.plot(steps[k - 1 :], smooth, color='C0', label=f'train loss ({k}-step mean)')
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
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
