"""ONNX export of the full inference path and the parity gate."""

from __future__ import annotations

import copy

import onnx
import pytest
import torch

from learning_test_utils import tiny_localizing_policy, tiny_policy
from vla_learning.export.onnx_export import export_onnx
from vla_learning.export.parity import ParityError, check_parity
from vla_learning.policies.factory import make_policy
from vla_learning.spec import PolicySpec, sha256_file


@pytest.mark.parametrize('localizer', [False, True])
@pytest.mark.parametrize('policy_type', ['flow', 'act'])
def test_onnx_matches_pytorch(policy_type, localizer, tiny_data, tmp_path) -> None:
    train, val = tiny_data
    make = tiny_localizing_policy if localizer else tiny_policy
    policy = make(policy_type, train)
    spec = export_onnx(policy, tmp_path / 'model.onnx')
    assert spec.model_sha256 == sha256_file(tmp_path / 'model.onnx')
    names = [i.name for i in onnx.load(str(tmp_path / 'model.onnx')).graph.input]
    assert tuple(names) == spec.inputs
    assert spec.uses_noise == (policy_type == 'flow')
    report = check_parity(policy, tmp_path / 'model.onnx', val.record_observations(8))
    assert report.passed, report.summary()
    assert report.num_samples == 8 and report.max_abs_error < 1e-4 and report.min_cosine > 0.99999


def test_onnx_matches_pytorch_when_the_flow_expert_predicts_actions(tiny_data, tmp_path) -> None:
    train, val = tiny_data
    policy = tiny_policy('flow', train)
    policy.config = policy.config.replace(flow=policy.config.flow.replace(prediction='actions'))
    export_onnx(policy, tmp_path / 'model.onnx')
    report = check_parity(policy, tmp_path / 'model.onnx', val.record_observations(8))
    assert report.passed, report.summary()
    assert report.max_abs_error < 1e-4 and report.min_cosine > 0.99999


@pytest.mark.parametrize('reads_trunk', [True, False])
def test_onnx_matches_pytorch_with_the_mlp_expert(reads_trunk: bool, tiny_data, tmp_path) -> None:
    """Without the trunk, as sim_flow_scene.yaml ships it: the localizer's pretrained stem too."""
    train, val = tiny_data
    stem = {} if reads_trunk else {'stem': 'efficientnet-lite0'}
    policy = tiny_localizing_policy('flow', train, condition_head=True, **stem)
    flow = {'expert': 'mlp', 'mlp_width': 16, 'prediction': 'actions'}
    flow['mlp_reads_trunk'] = reads_trunk
    policy = make_policy(
        policy.config.replace(flow=policy.config.flow.replace(**flow)), train.norm_stats()
    )
    export_onnx(policy, tmp_path / 'model.onnx')
    report = check_parity(policy, tmp_path / 'model.onnx', val.record_observations(8))
    assert report.passed, report.summary()
    assert report.max_abs_error < 1e-4 and report.min_cosine > 0.99999


def test_parity_gate_fails_on_a_perturbed_model(tiny_data, tmp_path) -> None:
    train, val = tiny_data
    policy = tiny_policy('flow', train)
    perturbed = copy.deepcopy(policy)
    with torch.no_grad():
        perturbed.expert.action_out.bias.add_(0.05)
    export_onnx(perturbed, tmp_path / 'bad.onnx')
    obs = val.record_observations(8)
    report = check_parity(policy, tmp_path / 'bad.onnx', obs)
    assert not report.passed
    assert report.max_abs_error > report.atol
    with pytest.raises(ParityError, match='FAIL'):
        check_parity(policy, tmp_path / 'bad.onnx', obs, raise_on_failure=True)


def test_unrolled_flow_graph_has_one_expert_per_step(tiny_data, tmp_path) -> None:
    train, _ = tiny_data
    policy = tiny_policy('flow', train)
    export_onnx(policy, tmp_path / 'm.onnx')
    graph = onnx.load(str(tmp_path / 'm.onnx')).graph
    # The expert's output projection appears once per Euler step.
    gemms = [n for n in graph.node if n.op_type in ('MatMul', 'Gemm')]
    assert not any(n.op_type == 'Loop' for n in graph.node)
    assert len(gemms) >= policy.config.flow.num_steps


def test_spec_round_trip(tmp_path) -> None:
    spec = PolicySpec(
        policy_type='flow', joint_names=('a', 'b'), dt=0.1, horizon=3, action_dim=2, state_dim=2,
        num_cameras=1, image_size=32, lang_dim=8, inputs=('images', 'state', 'lang_emb', 'noise'),
    )  # fmt: skip
    spec.save(tmp_path)
    assert PolicySpec.load(tmp_path) == spec
    assert spec.input_shapes(2)['noise'] == (2, 3, 2)
