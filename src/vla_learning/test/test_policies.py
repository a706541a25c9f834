"""Flow sampling, gradients, normalization, ACT through the common interface."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from learning_test_utils import (
    coloured_scenes,
    first_batch,
    predict_with_scene,
    tiny_config,
    tiny_localizing_policy,
    tiny_policy,
)
from vla_core.config import ConfigError
from vla_learning.normalization import NormStats
from vla_learning.policies.base import Policy
from vla_learning.policies.configuration_common import SceneConfig
from vla_learning.policies.factory import make_policy
from vla_learning.training.checkpoint import load_policy, save_checkpoint


def _scene_state(n: int = 4) -> torch.Tensor:
    """A recorded scene state ``(n, 4)`` [m]: block xy, target xy."""
    return torch.tensor([[0.45, 0.1, 0.35, -0.1]]).repeat(n, 1)


@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_predict_chunk_shape_and_interface(policy_type: str, tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_policy(policy_type, train).eval()
    assert isinstance(policy, Policy)
    b = first_batch(train, 3)
    loss, logs = policy.compute_loss(b, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and logs
    with torch.no_grad():
        out = policy.predict_chunk(b.images, b.state, b.lang_emb, policy.sample_noise(3))
    assert out.shape == (3, 4, 6)
    assert policy.uses_noise == (policy_type == 'flow')


def test_flow_sampling_is_deterministic_given_the_noise_seed(tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_policy('flow', train).eval()
    b = first_batch(train, 2)

    def sample(seed: int) -> torch.Tensor:
        noise = policy.sample_noise(2, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return policy.predict_chunk(b.images, b.state, b.lang_emb, noise)

    torch.testing.assert_close(sample(7), sample(7), rtol=0, atol=0)
    assert not torch.allclose(sample(7), sample(8))


def test_flow_integrates_num_steps_of_the_velocity_field(tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_policy('flow', train).eval()
    calls = []
    policy.expert.register_forward_hook(lambda *_: calls.append(1))
    b = first_batch(train, 1)
    with torch.no_grad():
        policy.predict_chunk(b.images, b.state, b.lang_emb, policy.sample_noise(1))
    assert len(calls) == policy.config.flow.num_steps


class _KnownField(torch.nn.Module):
    """A velocity field in closed form, standing in for the learned action expert."""

    def __init__(self, field) -> None:
        super().__init__()
        self.field = field

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, memory: torch.Tensor, cond: torch.Tensor | None
    ) -> torch.Tensor:
        return self.field(x, t[:, None, None])


@pytest.mark.parametrize('steps', [1, 4, 10, 50])
def test_flow_integration_recovers_a_known_velocity_field(steps: int, tiny_data) -> None:
    """Euler from noise (t=1) to t=0 in pi0's convention, against closed-form answers."""
    train, _ = tiny_data
    policy = tiny_policy('flow', train).eval()
    policy.config = policy.config.replace(flow=policy.config.flow.replace(num_steps=steps))
    b = first_batch(train, 2)
    noise = policy.sample_noise(2, torch.Generator().manual_seed(0))
    c = torch.randn(noise.shape[1:], generator=torch.Generator().manual_seed(1))

    def integrate(field) -> torch.Tensor:
        policy.expert = _KnownField(field)
        with torch.no_grad():
            chunk = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
        return policy.normalizer.normalize_actions(chunk, b.state)

    # The flow-matching field of a single chunk c, v = (x - c) / t: the paths are straight
    # lines, which Euler follows exactly, so it lands on c (normalized) for any step count.
    torch.testing.assert_close(integrate(lambda x, t: (x - c) / t), c.expand_as(noise))
    # A linear field v = k x: integrating dx/dt = k x from t=1 to 0 gives x(0) = exp(-k) x(1);
    # N Euler steps give (1 - k/N)^N x(1) exactly, converging as 1/N to the true solution.
    k = 0.7
    got = integrate(lambda x, t: k * x)
    torch.testing.assert_close(got, noise * (1 - k / steps) ** steps)
    ratio = (got / noise).mean()
    assert abs(ratio - math.exp(-k)) <= k**2 / steps * math.exp(-k)


@pytest.mark.parametrize('steps', [1, 4, 10])
def test_action_prediction_lands_on_the_predicted_chunk_and_regresses_on_it(
    steps: int, tiny_data
) -> None:
    """``flow.prediction: actions``: the expert outputs the clean chunk and the velocity
    ``(x - chunk) / t`` follows from the interpolation, so Euler's last step lands on it."""
    train, _ = tiny_data
    policy = tiny_policy('flow', train).eval()
    flow = policy.config.flow.replace(num_steps=steps, prediction='actions')
    policy.config = policy.config.replace(flow=flow)
    b = first_batch(train, 2)
    noise = policy.sample_noise(2, torch.Generator().manual_seed(0))
    c = torch.randn(noise.shape[1:], generator=torch.Generator().manual_seed(1))
    policy.expert = _KnownField(lambda x, t: c.expand_as(x))
    with torch.no_grad():
        chunk = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
    landed = policy.normalizer.normalize_actions(chunk, b.state)
    torch.testing.assert_close(landed, c.expand_as(noise))
    # Training regresses the expert's output on the normalized chunk itself, not on a velocity.
    _, logs = policy.compute_loss(b, torch.Generator().manual_seed(0))
    target = policy.normalizer.normalize_actions(b.actions, b.state)
    assert logs['flow_mse'] == pytest.approx(float((c - target).pow(2).mean()), rel=1e-5)


def _mlp_expert_policy(data, reads_trunk: bool = True) -> Policy:
    policy = tiny_localizing_policy('flow', data, condition_head=True)
    flow = {'expert': 'mlp', 'mlp_width': 16, 'mlp_reads_trunk': reads_trunk}
    cfg = policy.config.replace(flow=policy.config.flow.replace(**flow))
    torch.manual_seed(0)
    return make_policy(cfg, data.norm_stats())


def test_mlp_expert_needs_condition_head() -> None:
    cfg = tiny_config('flow')
    with pytest.raises(ConfigError, match='condition_head'):
        cfg.replace(flow=cfg.flow.replace(expert='mlp'))


@pytest.mark.parametrize('reads_trunk', [True, False])
def test_mlp_expert_reads_joints_scene_and_trunk_only_where_configured(
    reads_trunk: bool, tiny_data
) -> None:
    train, _ = tiny_data
    policy = _mlp_expert_policy(train, reads_trunk)
    batch = first_batch(train)
    batch.env_state = _scene_state()
    # Without the trunk reading it there is no trunk, and no parameter goes without gradient.
    assert (policy.encoder is None) != reads_trunk
    missing, leaked = _grad_report(policy, batch)
    assert missing == [] and leaked == []
    policy.eval()
    noise = policy.sample_noise(4, torch.Generator().manual_seed(0))
    scene = batch.env_state

    def chunk(images: torch.Tensor, state: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return predict_with_scene(policy, images, state, batch.lang_emb, noise, scene)

    base = chunk(batch.images, batch.state, scene)
    assert base.shape == (4, *policy.chunk_shape)
    assert not torch.allclose(base, chunk(batch.images, batch.state + 0.3, scene))
    assert not torch.allclose(base, chunk(batch.images, batch.state, scene + 0.05))
    # The images reach it only through the trunk (the scene state is given here).
    assert torch.allclose(base, chunk(1 - batch.images, batch.state, scene)) != reads_trunk


def test_act_is_deterministic_and_ignores_noise(tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_policy('act', train).eval()
    b = first_batch(train, 2)
    with torch.no_grad():
        a = policy.predict_chunk(b.images, b.state, b.lang_emb, policy.sample_noise(2))
        c = policy.predict_chunk(b.images, b.state, b.lang_emb)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def _grad_report(policy: Policy, batch) -> tuple[list[str], list[str]]:
    policy.train()
    loss, _ = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    loss.backward()
    missing = [
        n for n, p in policy.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))
    ]  # fmt: skip
    leaked = [n for n, p in policy.named_parameters() if not p.requires_grad and p.grad is not None]
    return missing, leaked


@pytest.mark.parametrize('tokens', ['grid', 'keypoints', 'keypoints+film'])
@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_every_trainable_parameter_gets_gradient(policy_type: str, tokens: str, tiny_data) -> None:
    train, _ = tiny_data
    # Stride 8: a 4x4 map at 32 px, so keypoint attention has cells to choose between.
    policy = tiny_policy(
        policy_type, train, tokens=tokens.split('+')[0], num_keypoints=3, feature_stride=8,
        instruction_film=tokens.endswith('film'),
    )  # fmt: skip
    assert all(p.requires_grad for p in policy.parameters())
    missing, leaked = _grad_report(policy, first_batch(train))
    assert missing == [] and leaked == []


@pytest.mark.parametrize('condition', [False, True])
@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_condition_head_feeds_the_state_and_scene_token_past_the_trunk(
    policy_type: str, condition: bool, tiny_data
) -> None:
    train, _ = tiny_data
    plain = tiny_localizing_policy(policy_type, train)
    policy = tiny_localizing_policy(policy_type, train, condition_head=condition)
    # Built last: switching it on leaves every other module's initialization as it was.
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(policy.state_dict()[name], value, rtol=0, atol=0)
    batch = first_batch(train)
    batch.env_state = _scene_state()
    missing, leaked = _grad_report(policy, batch)
    assert missing == [] and leaked == []
    policy.eval()
    # The trunk's memory held fixed: only a direct path lets the state or the scene move the chunk.
    memory = torch.randn(4, policy.encoder.num_tokens, policy.config.trunk.d_model)
    policy.encoder.forward = lambda *args, **kwargs: memory
    noise = policy.sample_noise(4, torch.Generator().manual_seed(0))
    scene = batch.env_state
    with torch.no_grad():
        base = predict_with_scene(policy, batch.images, batch.state, batch.lang_emb, noise, scene)
        moved_joints = predict_with_scene(
            policy, batch.images, batch.state + 0.3, batch.lang_emb, noise, scene
        )
        moved_block = predict_with_scene(
            policy, batch.images, batch.state, batch.lang_emb, noise, scene + 0.05
        )
    assert torch.allclose(base, moved_joints) != condition
    assert torch.allclose(base, moved_block) != condition


@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_scene_localizer_trains_on_recorded_rows_and_feeds_the_trunk(
    policy_type: str, tiny_data
) -> None:
    train, _ = tiny_data
    policy = tiny_localizing_policy(policy_type, train)
    batch = first_batch(train)
    known = _scene_state()
    batch.env_state = known
    missing, leaked = _grad_report(policy, batch)  # localizer, its token, trunk, expert
    assert missing == [] and leaked == []
    _, logs = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    assert logs['scene_rmse_m'] > 0.0
    _, logs = policy.compute_loss(
        dataclasses.replace(batch, env_state=torch.full((4, 4), math.nan)),
        torch.Generator().manual_seed(0),
    )
    assert 'scene_rmse_m' not in logs  # NaN rows (a robot without scene state) are no target
    with pytest.raises(ValueError, match='environment_state'):
        policy.compute_loss(dataclasses.replace(batch, env_state=None))


def test_localizer_stem_starts_from_imagenet_weights_and_fine_tunes(tiny_data) -> None:
    from vla_learning.policies.vision import load_efficientnet_lite0

    train, _ = tiny_data
    policy = tiny_localizing_policy('flow', train, stem='efficientnet-lite0')
    assert policy.localizer is not None
    imagenet = load_efficientnet_lite0(32)._conv_stem.weight
    for stream in (policy.localizer.object, policy.localizer.goal):
        stem = stream.convs[0]
        torch.testing.assert_close(stem.conv.weight, imagenet, rtol=0, atol=0)
        assert stem(first_batch(train).images[:, 0]).shape == (4, 16, 16, 16)  # stride 2
    batch = first_batch(train)
    batch.env_state = _scene_state()
    missing, leaked = _grad_report(policy, batch)  # the stem fine-tunes with the localizer
    assert missing == [] and leaked == []


def test_scene_token_is_the_recorded_state_in_training_and_the_estimate_deployed(
    tiny_data,
) -> None:
    train, _ = tiny_data
    policy = tiny_localizing_policy('flow', train, teacher_noise_m=0.0).eval()
    b = first_batch(train)
    lang_n = policy.normalizer.normalize_lang(b.lang_emb)
    half = _scene_state()
    half[2:] = math.nan
    with torch.no_grad():
        estimate = policy.localizer(b.images[:, 0], lang_n)
        token, loss, _ = policy.scene_tokens(b.images, lang_n, half)
        deployed, zero, _ = policy.scene_tokens(b.images, lang_n)
        expected = torch.cat([half[:2], estimate[2:]])  # recorded rows, estimate elsewhere
        torch.testing.assert_close(token[:, 0], policy.scene_in(expected / 0.1))
        torch.testing.assert_close(deployed[:, 0], policy.scene_in(estimate / 0.1))
        # The loss is taken on the recorded rows only.
        only_known, _ = policy.localizer.loss(b.images[:2, 0], lang_n[:2], half[:2])
    assert float(loss) == pytest.approx(float(only_known)) and float(zero) == 0.0


def test_a_frozen_localizer_has_no_loss_and_keeps_its_goal_choice(tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_localizing_policy('flow', train).train()
    policy.localizer.requires_grad_(False)  # as after scene.pretrain_steps
    policy.localizer.goal_error.copy_(torch.tensor([0.3, 0.1, 0.2, 0.4]))
    b = first_batch(train)
    lang_n = policy.normalizer.normalize_lang(b.lang_emb)
    half = _scene_state()
    half[2:] = math.nan
    token, loss, _ = policy.scene_tokens(b.images, lang_n, half)
    assert float(loss) == 0.0 and token.shape == (4, 1, policy.config.trunk.d_model)
    assert policy.localizer.goal_error.tolist() == pytest.approx([0.3, 0.1, 0.2, 0.4])


def test_scene_localizer_needs_the_scene_state_and_an_existing_camera(tiny_data) -> None:
    train, _ = tiny_data
    cfg = tiny_config('flow').replace(scene=SceneConfig(localizer=True))
    with pytest.raises(ValueError, match='scene state of 4'):
        make_policy(cfg, train.norm_stats())
    cfg = cfg.replace(
        features=cfg.features.replace(env_state_dim=4), scene=SceneConfig(localizer=True, camera=2)
    )
    with pytest.raises(ValueError, match='camera 2 >= 2'):
        make_policy(cfg, train.norm_stats())


def test_scene_localizer_finds_the_named_object_in_layouts_it_never_saw() -> None:
    from vla_learning.policies.scene_localizer import SceneLocalizer

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    lang = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # two centred instruction embeddings
    localizer = SceneLocalizer(SceneConfig(localizer=True, width=8), 32, 2)
    localizer.imprint(lang)  # as the trainer does with the training instructions
    opt = torch.optim.Adam(localizer.parameters(), lr=3e-3)
    images, which, target = coloured_scenes(256, gen)
    for _ in range(400):
        idx = torch.randint(len(images), (32,), generator=gen)
        loss, _ = localizer.loss(images[idx], lang[which[idx]], target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    images, which, target = coloured_scenes(100, gen)  # new layouts
    with torch.no_grad():
        err = (localizer(images, lang[which]) - target).abs()
    assert float(err.median()) < 0.01  # a pixel; the layout spans 26


def test_scene_localizer_uses_the_goal_candidate_with_the_least_running_error() -> None:
    from vla_learning.policies.scene_localizer import SceneLocalizer

    torch.manual_seed(0)
    localizer = SceneLocalizer(SceneConfig(localizer=True, width=4, goal_candidates=3), 32, 2)
    images, lang = torch.rand(5, 3, 32, 32), torch.randn(5, 2)
    with torch.no_grad():
        goals = localizer.goal((images - 0.5) / 0.25)  # (B, candidate, xy)
        localizer.goal_error.copy_(torch.tensor([0.5, 0.0, 0.4]))
        torch.testing.assert_close(localizer(images, lang)[:, 2:], goals[:, 1], atol=1e-3, rtol=0)
        target = torch.cat([torch.zeros(5, 2), goals[:, 0]], -1)  # candidate 0 is exact
        localizer.eval()
        localizer.loss(images, lang, target)
        assert localizer.goal_error.tolist() == pytest.approx([0.5, 0.0, 0.4])  # eval: kept
        localizer.train()
        for _ in range(300):  # no optimizer step: only the running error moves
            localizer.loss(images, lang, target)
    assert int(localizer.goal_error.argmin()) == 0 and float(localizer.goal_error[0]) < 0.01


def test_each_instruction_gets_object_candidates_and_uses_its_best() -> None:
    from vla_learning.policies.scene_localizer import SceneLocalizer

    localizer = SceneLocalizer(SceneConfig(localizer=True, width=4, object_heatmaps=6), 32, 8)
    instructions = torch.randn(3, 8)
    instructions -= instructions.mean(0)  # centred, as normalize_lang gives them
    localizer.imprint(instructions)  # instruction i starts on heatmaps i and i + 3
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        choice = localizer.select(instructions).softmax(-1)
        own = choice[torch.arange(3), torch.arange(3)] + choice[torch.arange(3), torch.arange(3, 6)]
        objects = localizer.object((images - 0.5) / 0.25)  # (B, heatmap, xy)
        localizer.object_error.copy_(torch.tensor([0.5, 0.0, 0.5, 0.0, 0.5, 0.0]))
        estimate = localizer(images, instructions)[:, :2]
    assert float(own.min()) > 0.99
    # Each instruction's estimate is its own candidate with the least running error.
    best = torch.tensor([3, 1, 5])
    torch.testing.assert_close(estimate, objects[torch.arange(3), best], atol=1e-3, rtol=0)
    # Training moves the running error of the chosen heatmaps only.
    localizer.object_error.zero_()
    target = torch.cat([objects[:1, 0], torch.zeros(1, 2)], -1).expand(4, 4)  # heatmap 0 exact
    with torch.no_grad():
        for _ in range(300):  # a batch of instruction 0 alone
            localizer.loss(images[:1].expand(4, -1, -1, -1), instructions[:1].expand(4, -1), target)
    error = localizer.object_error
    assert float(error[0]) < 0.01 < float(error[3]) and error[[1, 2, 4, 5]].abs().max() == 0


@pytest.mark.parametrize(
    ('stride', 'tail'),
    [(32, ('_blocks.15.', '_conv_head', '_bn1')), (16, ('_blocks.10.',)), (8, ('_blocks.10.',))],
)
def test_frozen_pretrained_efficientnet_gets_no_gradient(stride, tail, tiny_data) -> None:
    """Real EfficientNet-Lite0 ImageNet weights, last MBConv block (+ head) unfrozen."""
    train, _ = tiny_data
    policy = tiny_policy(
        'flow', train, backbone='efficientnet-lite0', pretrained=True, freeze=True,
        trainable_blocks=1, feature_stride=stride,
    )  # fmt: skip
    net = policy.encoder.vision.backbone.net
    before = {k: v.clone() for k, v in net.state_dict().items() if 'running' in k}
    missing, leaked = _grad_report(policy, first_batch(train, 2))
    assert missing == [] and leaked == []
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert any(n.startswith('_conv_stem') for n in frozen)
    assert any(n.startswith('_blocks.0.') for n in frozen)
    assert trainable and all(n.startswith(tail) for n in trainable)
    for name, p in net.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    # Frozen BatchNorm keeps its ImageNet running statistics in train mode.
    assert not net._bn0.training
    for k, v in before.items():
        torch.testing.assert_close(net.state_dict()[k], v)


def test_stride8_tokens_are_stage3_and_upsampled_stage5_hypercolumns(tiny_data) -> None:
    train, _ = tiny_data
    policy = tiny_policy(
        'flow', train, backbone='efficientnet-lite0', pretrained=True, freeze=True,
        feature_stride=8, tokens='keypoints', num_keypoints=5,
    )  # fmt: skip
    vision = policy.encoder.vision
    images = first_batch(train, 2).images  # 32 px
    feats = vision.backbone_features(images)
    assert feats.shape == (2, 2, 40 + 112, 4, 4)
    # The stage-5 half is constant over each 2x2 block (nearest upsampling of a 2x2 map).
    coarse = feats[:, :, 40:]
    torch.testing.assert_close(coarse[..., 0::2, 0::2], coarse[..., 1::2, 1::2])
    assert vision(images, feats).shape == (2, 2 * 5, policy.config.trunk.d_model)


def test_spatial_keypoint_finds_the_peak_of_its_attention_map() -> None:
    """The keypoint's position is the softmax-expected cell centre, in [-1, 1] image coords."""
    from vla_learning.policies.vision import _SpatialKeypoints

    kp = _SpatialKeypoints(channels=3, grid=8, num_keypoints=1, dim=16)
    with torch.no_grad():  # attention logits = 50 * channel 1 (identity-like 1x1 convs)
        first, _, last = kp.attention
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, 1] = 1.0
        last.weight.zero_()
        last.bias.zero_()
        last.weight[0, 0] = 50.0 / torch.nn.functional.gelu(torch.tensor(1.0))
    feats = torch.zeros(2, 3, 8, 8)
    feats[0, 1, 2, 6] = 1.0  # row 2, column 6
    feats[1, 1, 5, 1] = 1.0
    attn = kp.attention(feats).flatten(2).softmax(-1)
    xy = attn @ kp.pos_grid
    centre = lambda i: (i + 0.5) / 8 * 2 - 1  # noqa: E731
    torch.testing.assert_close(xy[0, 0], torch.tensor([centre(6), centre(2)]), atol=1e-3, rtol=0)
    torch.testing.assert_close(xy[1, 0], torch.tensor([centre(1), centre(5)]), atol=1e-3, rtol=0)
    assert kp(feats).shape == (2, 1, 16)


def test_instruction_film_chooses_what_a_keypoint_tracks() -> None:
    """Two objects in two feature channels; the instruction decides which one the keypoint finds.

    That is the grounding an instruction-blind keypoint cannot do: with both colours in view,
    'push the red block' and 'push the blue block' must look at different places.
    """
    from vla_learning.policies.vision import _SpatialKeypoints

    kp = _SpatialKeypoints(channels=2, grid=8, num_keypoints=1, dim=2, film=True)
    hidden = kp.attention[0].out_channels
    with torch.no_grad():  # hidden unit c = feature channel c; logits = 50 * (h0 + h1)
        first, _, last = kp.attention
        first.weight.zero_()
        first.bias.zero_()
        first.weight[0, 0] = first.weight[1, 1] = 1.0
        last.weight.zero_()
        last.bias.zero_()
        last.weight[0, :2] = 50.0
        # Instruction one-hot i: gain -1 (silences) the *other* channel.
        kp.film.weight.zero_()
        kp.film.weight[0, 1] = kp.film.weight[1, 0] = -1.0
    assert kp.film.out_features == 2 * hidden
    feats = torch.zeros(2, 2, 8, 8)
    feats[:, 0, 2, 6] = 1.0  # object A in channel 0: row 2, column 6
    feats[:, 1, 5, 1] = 1.0  # object B in channel 1: row 5, column 1
    instruction = torch.eye(2)  # sample 0 asks for A, sample 1 for B
    conv_in, gelu, conv_out = kp.attention
    gain, bias = kp.film(instruction)[..., None, None].chunk(2, dim=1)
    attn = conv_out(gelu(conv_in(feats) * (1 + gain) + bias)).flatten(2).softmax(-1)
    xy = attn @ kp.pos_grid
    centre = lambda i: (i + 0.5) / 8 * 2 - 1  # noqa: E731
    torch.testing.assert_close(xy[0, 0], torch.tensor([centre(6), centre(2)]), atol=1e-3, rtol=0)
    torch.testing.assert_close(xy[1, 0], torch.tensor([centre(1), centre(5)]), atol=1e-3, rtol=0)
    # The module's own forward agrees, and refuses to run without the instruction.
    tokens = kp(feats, instruction)
    assert tokens.shape == (2, 1, 2) and not torch.allclose(tokens[0], tokens[1])
    with pytest.raises(ValueError, match='instruction'):
        kp(feats)


def test_instruction_film_is_identity_at_initialization_and_needs_keypoints(tiny_data) -> None:
    from vla_core.config import ConfigError
    from vla_learning.policies.configuration_common import VisionConfig

    train, _ = tiny_data
    kwargs = dict(tokens='keypoints', num_keypoints=3, feature_stride=8)
    plain = tiny_policy('flow', train, **kwargs).eval()
    film = tiny_policy('flow', train, instruction_film=True, **kwargs).eval()
    missing = film.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all('.film.' in k for k in missing)  # the FiLM layer keeps its zero init
    b = first_batch(train, 2)
    noise = plain.sample_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            film.predict_chunk(b.images, b.state, b.lang_emb, noise),
            plain.predict_chunk(b.images, b.state, b.lang_emb, noise),
        )
    with pytest.raises(ConfigError, match='instruction_film'):
        VisionConfig(tokens='grid', instruction_film=True)


def test_normalization_stats_travel_with_the_weights(tiny_data, tmp_path) -> None:
    train, _ = tiny_data
    policy = tiny_policy('flow', train)
    stats = train.norm_stats()
    assert not np.allclose(stats.action_mean, 0)
    path = save_checkpoint(tmp_path / 'p.pt', policy, step=3)
    loaded = load_policy(path)
    got = loaded.normalizer.stats()
    for name in ('state_mean', 'state_std', 'action_mean', 'action_std'):
        np.testing.assert_allclose(getattr(got, name), getattr(stats, name), rtol=1e-6)
    b = first_batch(train, 2)
    noise = policy.sample_noise(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.predict_chunk(b.images, b.state, b.lang_emb, noise),
            policy.eval().predict_chunk(b.images, b.state, b.lang_emb, noise),
        )


def test_normalizer_round_trip() -> None:
    from vla_learning.normalization import Normalizer

    rng = np.random.default_rng(0)
    stats = NormStats.from_data(rng.normal(2, 3, (50, 3)), rng.normal(-1, 0.5, (50, 4, 2)))
    norm = Normalizer(3, 2, stats)
    a, state = torch.randn(5, 4, 2), torch.randn(5, 3)
    torch.testing.assert_close(norm.unnormalize_actions(norm.normalize_actions(a, state), state), a)
    with pytest.raises(ValueError, match='do not match'):
        Normalizer(4, 2, stats)


def test_delta_actions_are_relative_to_the_state(tiny_data) -> None:
    """Stats of targets minus state; the state is added back inside the model (and its export)."""
    from vla_learning.normalization import Normalizer

    rng = np.random.default_rng(0)
    state = rng.normal(0, 1.0, (200, 2))  # spread-out absolute positions ...
    actions = state[:, None, :] + rng.normal(0.1, 0.01, (200, 4, 2))  # ... small motions
    stats = NormStats.from_data(state, actions, delta=True)
    np.testing.assert_allclose(stats.action_mean, 0.1, atol=0.005)
    np.testing.assert_allclose(stats.action_std, 0.01, rtol=0.2)
    norm = Normalizer(2, 2, stats, delta=True)
    a, s = torch.as_tensor(actions[:5], dtype=torch.float32), torch.as_tensor(state[:5]).float()
    normalized = norm.normalize_actions(a, s)
    assert normalized.abs().max() < 5  # absolute targets would sit at ~100 std from the mean
    torch.testing.assert_close(norm.unnormalize_actions(normalized, s), a)
    # A delta policy predicts state + offset: the same normalized output, a moved state.
    train, _ = tiny_data
    torch.manual_seed(0)
    policy = make_policy(
        tiny_config('act').replace(delta_actions=True), train.norm_stats(delta=True)
    ).eval()
    b = first_batch(train, 2)
    shift = torch.zeros_like(b.state)
    shift[:, 0] = 0.5
    with torch.no_grad():
        base = policy.predict_chunk(b.images, b.state, b.lang_emb)
        policy.normalizer.state_mean += shift[0]  # the network sees the same normalized state
        moved = policy.predict_chunk(b.images, b.state + shift, b.lang_emb)
    torch.testing.assert_close(moved - base, shift[:, None, :].expand_as(base))
    with pytest.raises(ValueError, match='delta_actions'):
        make_policy(
            tiny_config('act').replace(
                delta_actions=True,
                features=tiny_config('act').features.replace(state_dim=5),
            )
        )


def test_instruction_embeddings_are_centred_and_spread_to_unit_scale() -> None:
    """Three instructions that differ in one word must not look alike to the policy."""
    from vla_learning.normalization import Normalizer

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 384)
    table = base + 0.05 * rng.normal(0, 1, (3, 384))  # cosine similarity ~0.998
    stats = NormStats.from_data(np.zeros((4, 2)), np.zeros((4, 3, 2)), lang_table=table)
    norm = Normalizer(2, 2, stats, lang_dim=384)
    out = norm.normalize_lang(torch.as_tensor(table, dtype=torch.float32))
    torch.testing.assert_close(out.mean(0), torch.zeros(384), atol=1e-5, rtol=0)
    rms = out.pow(2).sum(-1).mean().sqrt()
    torch.testing.assert_close(rms, torch.tensor(1.0))
    cosine = torch.nn.functional.cosine_similarity(out[0], out[1], dim=0)
    assert cosine < 0.0  # centred: distinct directions, not one shared one
    # Without instruction stats the embedding passes through unchanged.
    plain = Normalizer(2, 2, NormStats.identity(2, 2), lang_dim=384)
    x = torch.randn(2, 384)
    torch.testing.assert_close(plain.normalize_lang(x), x)


def test_checkpoints_without_instruction_stats_still_load(tiny_data, tmp_path) -> None:
    """Checkpoints written before instruction normalization existed load it as the identity."""
    train, _ = tiny_data
    policy = tiny_policy('act', train)
    path = save_checkpoint(tmp_path / 'old.pt', policy, step=1)
    ckpt = torch.load(path, weights_only=True)
    for key in ('normalizer.lang_mean', 'normalizer.lang_std'):
        del ckpt['model'][key]
    torch.save(ckpt, path)
    loaded = load_policy(path)
    x = torch.randn(2, train.features.lang_dim)
    torch.testing.assert_close(loaded.normalizer.normalize_lang(x), x)


def test_checkpoints_with_the_retired_auxiliary_head_still_load(tiny_data, tmp_path) -> None:
    """The trunk-token scene-state head (training only) was replaced by the localizer."""
    train, _ = tiny_data
    policy = tiny_policy('flow', train)
    path = save_checkpoint(tmp_path / 'aux.pt', policy, step=1)
    ckpt = torch.load(path, weights_only=True)
    ckpt['policy_config']['env_state_loss_weight'] = 0.5
    ckpt['model']['env_state_head.0.weight'] = torch.zeros(32, 32)
    torch.save(ckpt, path)
    loaded = load_policy(path)
    b = first_batch(train, 2)
    noise = policy.sample_noise(2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.predict_chunk(b.images, b.state, b.lang_emb, noise),
            policy.eval().predict_chunk(b.images, b.state, b.lang_emb, noise),
        )


@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_cached_backbone_features_give_the_same_chunk(policy_type: str, tiny_data) -> None:
    """Validation reuses the features cached for training instead of re-running the backbone."""
    train, _ = tiny_data
    policy = tiny_policy(policy_type, train, freeze=True).eval()
    b = first_batch(train, 2)
    noise = policy.sample_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = policy.encoder.vision.backbone_features(b.images)
        direct = policy.predict_chunk(b.images, b.state, b.lang_emb, noise)
        cached = policy.predict_chunk(b.images * 0, b.state, b.lang_emb, noise, feats)
    torch.testing.assert_close(cached, direct)
