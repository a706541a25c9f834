"""The training loop: seeded, resumable, validated, plotted; DDP when launched by torchrun."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vla_core.config import config_to_flat
from vla_learning.data.dataset import ChunkDataset
from vla_learning.policies.base import Batch, Policy
from vla_learning.policies.factory import make_policy
from vla_learning.policies.scene_localizer import SCENE_NAMES
from vla_learning.training.checkpoint import load_checkpoint, save_checkpoint
from vla_learning.training.configuration_train import ExperimentConfig
from vla_learning.training.distributed import DistContext, init_distributed

__all__ = ['Trainer', 'make_datasets', 'warmup_cosine']

# The localizer's pretraining: the share of its steps spent warming up, and its cosine floor.
PRETRAIN_WARMUP = 0.05
PRETRAIN_FLOOR = 0.01


def warmup_cosine(step: int, peak: float, warmup: int, total: int, floor_ratio: float) -> float:
    """Learning rate at ``step``: linear warm-up to ``peak``, then cosine down to
    ``floor_ratio * peak`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak * (floor_ratio + (1 - floor_ratio) * cos)


def make_datasets(cfg: ExperimentConfig) -> tuple[ChunkDataset, ChunkDataset]:
    if cfg.data.source == 'synthetic':
        from vla_learning.data.synthetic import make_synthetic_datasets

        return make_synthetic_datasets(cfg.data.synthetic)
    if cfg.data.source == 'recorded':
        from vla_learning.data.recorded import make_recorded_datasets

        return make_recorded_datasets(cfg.data.recorded, progress=cfg.train.progress)
    raise ValueError(f'unknown data source {cfg.data.source!r}')


class _LossModule(nn.Module):
    """Routes DDP's forward to ``compute_loss`` so gradients are all-reduced."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: Batch, generator: torch.Generator) -> Any:
        return self.policy.compute_loss(batch, generator)


class Trainer:
    """Builds data, policy and optimizer from an :class:`ExperimentConfig`, then :meth:`fit`."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        datasets: tuple[ChunkDataset, ChunkDataset] | None = None,
        dist: DistContext | None = None,
    ) -> None:
        tc = cfg.train
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        self.dist = dist or init_distributed(tc.device)
        self.device = self.dist.device
        if self.device.type == 'cpu':
            # Subnormal floats take a slow path on x86: the localizer's pretraining ran 4x
            # slower (1.1 against 0.25 s per step) once its activations decayed into them.
            torch.set_flush_denormal(True)
        self.out = Path(tc.output_dir)
        self.train_set, self.val_set = datasets or make_datasets(cfg)
        # The dataset decides the policy's input/output sizes.
        self.cfg = cfg.replace(policy=cfg.policy.replace(features=self.train_set.features))
        torch.manual_seed(tc.seed)  # parameter init
        stats = self.train_set.norm_stats(delta=self.cfg.policy.delta_actions)
        self.policy = make_policy(self.cfg.policy, stats).to(self.device)
        vision = None if self.policy.encoder is None else self.policy.encoder.vision
        if tc.cache_vision_features and vision is not None and vision.fully_frozen:
            # A frozen backbone without augmentation gives the same features every epoch.
            vision.eval()
            for dataset in (self.train_set, self.val_set):
                if dataset.vision_features is None:
                    dataset.cache_vision_features(
                        vision, self.device, progress=tc.progress and self.dist.is_main
                    )
        localizer = self.policy.localizer
        if localizer is not None:
            table = self.train_set.lang_table.to(self.device)
            localizer.imprint(self.policy.normalizer.normalize_lang(table))
        self.pretrain_localizer_steps = (
            0 if localizer is None else self.cfg.policy.scene.pretrain_steps
        )
        if localizer is not None and self.pretrain_localizer_steps:
            localizer.requires_grad_(False)  # trained by pretrain_localizer alone
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        # The average starts as a copy at the first optimizer step, so after the localizer's
        # pretraining; buffers (normalization stats, frozen BatchNorm) follow the live model.
        self.ema = (
            AveragedModel(self.policy, multi_avg_fn=get_ema_multi_avg_fn(cfg.optim.ema_decay))
            if cfg.optim.ema_decay > 0 else None
        )  # fmt: skip
        self.loss_module: nn.Module = _LossModule(self.policy)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == 'cuda' else None
            self.loss_module = nn.parallel.DistributedDataParallel(self.loss_module, device_ids=ids)
        # Every random draw of the loop (sampling, noise, t, z) comes from this generator.
        self.generator = torch.Generator().manual_seed(tc.seed + 7919 * self.dist.rank)
        self.step = 0
        self.history: dict[str, list[float]] = {
            'step': [], 'train_loss': [], 'lr': [],
            'val_step': [], 'val_loss': [], 'val_action_mse': [],
            'scene_pretrain_loss': [], 'scene_val_median_m': [],
        }  # fmt: skip

    # ---- schedule -------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine down to ``min_lr_ratio * lr``."""
        o = self.cfg.optim
        return warmup_cosine(step, o.lr, o.warmup_steps, self.cfg.train.steps, o.min_lr_ratio)

    # ---- checkpoints ----------------------------------------------------------------------
    @property
    def deployed(self) -> Policy:
        """The weights that are validated, checkpointed as ``model`` and exported: the moving
        average when ``optim.ema_decay`` is on (once it has started), else the live ones."""
        if self.ema is not None and int(self.ema.n_averaged) > 0:
            return self.ema.module
        return self.policy

    def save(self, path: Path) -> Path:
        rng = {'torch': torch.get_rng_state(), 'generator': self.generator.get_state()}
        if torch.cuda.is_available():
            rng['cuda'] = torch.cuda.get_rng_state()
        deployed, extra = self.deployed, {}
        if deployed is not self.policy:  # resume continues from the live weights
            extra['live_model'] = {k: v.detach().cpu() for k, v in self.policy.state_dict().items()}
            extra['ema_updates'] = int(self.ema.n_averaged)
        return save_checkpoint(
            path,
            deployed,
            self.step,
            optimizer=self.optimizer.state_dict(),
            rng=rng,
            history=self.history,
            experiment=config_to_flat(self.cfg),
            **extra,
        )

    def resume(self, path: str | Path) -> None:
        ckpt = load_checkpoint(path, map_location='cpu')
        self.policy.load_state_dict(ckpt.get('live_model', ckpt['model']))
        if self.ema is not None and 'live_model' in ckpt:
            self.ema.module.load_state_dict(ckpt['model'])
            self.ema.n_averaged.fill_(ckpt['ema_updates'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.step = int(ckpt['step'])
        # Keys newer than the checkpoint start empty.
        self.history.update({k: list(v) for k, v in ckpt['history'].items()})
        torch.set_rng_state(ckpt['rng']['torch'])
        if self.dist.is_main:
            self.generator.set_state(ckpt['rng']['generator'])
        else:  # only rank 0's stream is saved; other ranks restart theirs deterministically
            self.generator.manual_seed(self.cfg.train.seed + 7919 * self.dist.rank + self.step)
        if 'cuda' in ckpt['rng'] and torch.cuda.is_available():
            torch.cuda.set_rng_state(ckpt['rng']['cuda'])

    # ---- localizer pretraining -------------------------------------------------------------
    def pretrain_localizer(self) -> None:
        """Train the scene localizer alone on its loss (``scene.pretrain_steps`` at its own
        warm-up/cosine schedule), then leave it frozen for the policy's training.

        Inside the policy's schedule the named block took longer than the policy to ground
        and was seed-sensitive; alone, at a higher rate, it is minutes on a CPU. Every DDP rank
        runs the same seeded steps; rank 0's weights are broadcast at the end regardless.
        """
        from tqdm.auto import tqdm

        localizer, scene, tc = self.policy.localizer, self.cfg.policy.scene, self.cfg.train
        assert localizer is not None
        if self.train_set.env_state is None:
            raise ValueError(
                'scene.pretrain_steps trains the localizer on observation.environment_state; '
                'the data has none'
            )
        steps = self.pretrain_localizer_steps
        localizer.requires_grad_(True)
        localizer.train()
        params = list(localizer.parameters())
        optimizer = torch.optim.AdamW(
            params, lr=scene.pretrain_lr, weight_decay=self.cfg.optim.weight_decay
        )
        generator = torch.Generator().manual_seed(tc.seed + 104_729)
        warmup = max(1, int(PRETRAIN_WARMUP * steps))
        bar = tqdm(
            range(steps), desc='pretrain localizer', dynamic_ncols=True,
            disable=not (self.dist.is_main and tc.progress),
        )  # fmt: skip
        for step in bar:
            lr = warmup_cosine(step, scene.pretrain_lr, warmup, steps, PRETRAIN_FLOOR)
            for group in optimizer.param_groups:
                group['lr'] = lr
            index = torch.randint(
                len(self.train_set), (scene.pretrain_batch_size,), generator=generator
            )
            loss, _ = localizer.loss(*self._scene_batch(self.train_set, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
            optimizer.step()
            value = float(loss.detach())
            self.history['scene_pretrain_loss'].append(value)
            if (step + 1) % tc.log_every == 0:
                bar.set_postfix(loss=f'{value:.4f}', lr=f'{lr:.1e}')
            if self.dist.is_main and ((step + 1) % tc.eval_every == 0 or step + 1 == steps):
                recent = self.history['scene_pretrain_loss'][-tc.eval_every :]
                named = ', '.join(
                    f'{n} {v * 100:.2f}'
                    for n, v in zip(SCENE_NAMES, self.localizer_error(self.val_set), strict=True)
                )
                localizer.train()
                bar.write(
                    f'localizer step {step + 1}: loss={sum(recent) / len(recent):.4f}, '
                    f'validation median abs error [cm]: {named}'
                )
        bar.close()
        localizer.requires_grad_(False)
        if self.dist.enabled:
            for tensor in localizer.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        self.history['scene_val_median_m'] = self.localizer_error(self.val_set)
        if scene.expert_input == 'estimate':
            for dataset in (self.train_set, self.val_set):
                dataset.env_state = self.localizer_estimates(dataset)

    @torch.no_grad()
    def localizer_estimates(self, dataset: ChunkDataset) -> torch.Tensor:
        """The frozen localizer's estimate ``(N, 4)`` [m] of every frame of ``dataset``: what
        the policy trains on with ``scene.expert_input: estimate``."""
        localizer = self.policy.localizer
        assert localizer is not None
        localizer.eval()
        out = []
        for index in torch.arange(len(dataset)).split(self.cfg.train.batch_size):
            image, lang_n, _ = self._scene_batch(dataset, index)
            out.append(localizer(image, lang_n).cpu())
        return torch.cat(out).to(
            dataset.env_state.dtype if dataset.env_state is not None else torch.float32
        )

    @torch.no_grad()
    def localizer_error(self, dataset: ChunkDataset) -> list[float]:
        """Median absolute error [m] of the localizer per scene coordinate on ``dataset``'s
        frames with a recorded scene state."""
        localizer = self.policy.localizer
        assert localizer is not None and dataset.env_state is not None
        localizer.eval()
        errors = []
        for index in torch.arange(len(dataset)).split(self.cfg.train.batch_size):
            image, lang_n, target = self._scene_batch(dataset, index)
            errors.append((localizer(image, lang_n) - target).abs().cpu())
        error = torch.cat(errors)
        error = error[torch.isfinite(error).all(-1)]
        return error.median(0).values.tolist() if len(error) else [math.nan] * error.shape[1]

    def _scene_batch(
        self, dataset: ChunkDataset, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The localizer's inputs and target for ``index`` on the device, the instructions
        normalized (:meth:`ChunkDataset.scene_samples`)."""
        image, lang, target = dataset.scene_samples(index, self.cfg.policy.scene.camera)
        assert target is not None
        lang_n = self.policy.normalizer.normalize_lang(lang.to(self.device))
        return image.to(self.device), lang_n, target.to(self.device)

    # ---- loop -----------------------------------------------------------------------------
    def train_step(self) -> float:
        tc = self.cfg.train
        self.policy.train()
        for group in self.optimizer.param_groups:
            group['lr'] = self.lr_at(self.step)
        index = torch.randint(len(self.train_set), (tc.batch_size,), generator=self.generator)
        batch = self.train_set.batch(index).to(self.device)
        loss, _ = self.loss_module(batch, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.policy)
        self.step += 1
        value = float(loss.detach())
        self.history['step'].append(self.step)
        self.history['train_loss'].append(value)
        self.history['lr'].append(self.lr_at(self.step - 1))
        return value

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss and sampled-chunk MSE of :attr:`deployed` on a fixed validation subset with
        fixed noise."""
        policy = self.deployed
        policy.eval()
        tc = self.cfg.train
        g = torch.Generator().manual_seed(10_000 + tc.seed)  # same draws at every evaluation
        n = min(len(self.val_set), tc.eval_batches * tc.batch_size)
        losses, mses, weights = [], [], []
        for start in range(0, n, tc.batch_size):
            index = torch.arange(start, min(n, start + tc.batch_size))
            batch = self.val_set.batch(index).to(self.device)
            loss, _ = policy.compute_loss(batch, g)
            noise = policy.sample_noise(len(index), g).to(self.device)
            # Cached features, when there are any: the frozen backbone already ran on these.
            pred = policy.predict_chunk(
                batch.images, batch.state, batch.lang_emb, noise, batch.vision_features
            )
            norm = policy.normalizer.normalize_actions
            error = norm(pred, batch.state) - norm(batch.actions, batch.state)
            mses.append(float((error**2).mean()))
            losses.append(float(loss))
            weights.append(len(index))
        total = sum(weights)
        result = {
            'val_loss': sum(v * w for v, w in zip(losses, weights, strict=True)) / total,
            'val_action_mse': sum(v * w for v, w in zip(mses, weights, strict=True)) / total,
        }
        self.history['val_step'].append(self.step)
        self.history['val_loss'].append(result['val_loss'])
        self.history['val_action_mse'].append(result['val_action_mse'])
        return result

    def fit(
        self, resume: str | Path | None = None, *, overwrite: bool = False
    ) -> dict[str, list[float]]:
        """Train to ``train.steps``. A fresh run into a directory that holds checkpoints of an
        earlier one raises FileExistsError unless ``overwrite`` (which removes them first):
        continuing it is ``resume``."""
        from tqdm.auto import tqdm

        tc = self.cfg.train
        main = self.dist.is_main
        if resume:
            self.resume(resume)
        else:
            self._claim_output_dir(overwrite)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / 'config.json').write_text(json.dumps(config_to_flat(self.cfg), indent=1))
            if self.cfg.data.record_observations:
                recorded = self.val_set.record_observations(self.cfg.data.record_observations)
                recorded.save(self.out / 'observations.npz')
        if self.pretrain_localizer_steps and not self.history['scene_pretrain_loss']:
            self.pretrain_localizer()  # before the policy's bar, which would idle at 0 meanwhile
        bar = tqdm(
            total=tc.steps, initial=self.step, disable=not (main and tc.progress),
            desc=f'train {self.cfg.policy.type}', dynamic_ncols=True,
        )  # fmt: skip
        if main and self.step == 0:
            self.validate()  # the untrained baseline starts the validation curve
        running: list[float] = []
        while self.step < tc.steps:
            running.append(self.train_step())
            bar.update(1)
            if self.step % tc.log_every == 0:
                bar.set_postfix(
                    loss=f'{sum(running) / len(running):.4f}', lr=f'{self.lr_at(self.step):.1e}'
                )
                running.clear()
            last = self.step == tc.steps
            if main and (self.step % tc.eval_every == 0 or last):
                metrics = self.validate()
                bar.write(
                    f'step {self.step}: val_loss={metrics["val_loss"]:.4f} '
                    f'val_action_mse={metrics["val_action_mse"]:.4f}'
                )
                self.plot()
            if main and (self.step % tc.checkpoint_every == 0 or last):
                self.save(self.out / f'step_{self.step:07d}.pt')
                self.save(self.out / 'last.pt')
        bar.close()
        if main:
            (self.out / 'history.json').write_text(json.dumps(self.history))
            self.plot()
        return self.history

    def _claim_output_dir(self, overwrite: bool) -> None:
        earlier = sorted(self.out.glob('step_*.pt')) + sorted(self.out.glob('last.pt'))
        if not earlier:
            return
        if not overwrite:
            raise FileExistsError(
                f'{self.out} holds checkpoints of an earlier run ({earlier[-1].name}, '
                f'{len(earlier)} in all): continue it with --resume auto, replace it with '
                '--overwrite, or set train.output_dir'
            )
        if self.dist.is_main:
            for path in earlier:
                path.unlink()

    def plot(self) -> Path:
        from vla_learning.training.plotting import plot_history

        return plot_history(
            self.history, self.out / 'loss_curve.png', title=f'{self.cfg.policy.type} policy'
        )
