from dataclasses import dataclass

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_core.config import Config, param
from vla_ros_common.params import ParameterError, check_undeclared, declare_config


@dataclass(frozen=True, kw_only=True)
class Inner(Config):
    kp: float = param(2.0, description='gain', range=(0.0, 50.0))


@dataclass(frozen=True, kw_only=True)
class Demo(Config):
    robot: str = param(description='robot name (required)', read_only=True)
    rate_hz: float = param(100.0, description='loop rate [Hz]', range=(1.0, 1000.0))
    mode: str = param('pid', description='layer', choices=('pid', 'mpc'))
    weights: tuple[float, ...] = param((1.0, 2.0), description='weights', range=(0.0, 10.0))
    names: tuple[str, ...] = param((), description='optional names')
    inner: Inner = param(default_factory=Inner, description='inner gains')


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def _node(context, **overrides) -> Node:
    return Node(
        'demo',
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )


def test_declares_every_field_with_its_descriptor(context):
    node = _node(context, robot='arm')
    cfg = declare_config(node, Demo)
    assert cfg.value == Demo(robot='arm')
    described = node.describe_parameters(['robot', 'rate_hz', 'mode', 'inner.kp', 'weights'])
    robot, rate, mode, kp, weights = described
    assert robot.read_only and robot.description.startswith('robot name')
    assert rate.floating_point_range[0].from_value == 1.0
    assert rate.floating_point_range[0].to_value == 1000.0
    assert 'pid' in mode.additional_constraints
    assert kp.floating_point_range[0].to_value == 50.0
    assert weights.type == Parameter.Type.DOUBLE_ARRAY.value
    node.destroy_node()


def test_overrides_are_applied_and_ints_widen_to_float(context):
    node = _node(context, robot='arm', rate_hz=250, weights=[1, 2, 3], **{'inner.kp': 7})
    cfg = declare_config(node, Demo).value
    assert cfg.rate_hz == 250.0 and isinstance(cfg.rate_hz, float)
    assert cfg.weights == (1.0, 2.0, 3.0)
    assert cfg.inner.kp == 7.0
    node.destroy_node()


def test_out_of_range_override_names_the_parameter(context):
    node = _node(context, robot='arm', rate_hz=5000.0)
    with pytest.raises(ParameterError) as info:
        declare_config(node, Demo)
    assert info.value.field == 'rate_hz'
    assert "parameter 'rate_hz'" in str(info.value)
    assert '5000' in str(info.value) and '/demo' in str(info.value)
    node.destroy_node()


def test_invalid_choice_names_the_parameter(context):
    node = _node(context, robot='arm', mode='lqr')
    with pytest.raises(ParameterError, match=r"parameter 'mode': 'lqr' is not one of"):
        declare_config(node, Demo)
    node.destroy_node()


def test_missing_required_parameter_is_a_clear_error(context):
    node = _node(context)
    with pytest.raises(ParameterError, match=r"parameter 'robot': is required but was not set"):
        declare_config(node, Demo)
    node.destroy_node()


def test_runtime_changes_are_validated(context):
    node = _node(context, robot='arm')
    cfg = declare_config(node, Demo)
    seen = []
    cfg.on_change(seen.append)
    ok = node.set_parameters([Parameter('rate_hz', value=500.0)])[0]
    assert ok.successful and cfg.value.rate_hz == 500.0 and seen[-1].rate_hz == 500.0
    out_of_range = node.set_parameters([Parameter('rate_hz', value=0.5)])[0]
    assert not out_of_range.successful and cfg.value.rate_hz == 500.0
    bad_choice = node.set_parameters([Parameter('mode', value='lqr')])[0]
    assert not bad_choice.successful and "'mode'" in bad_choice.reason
    read_only = node.set_parameters([Parameter('robot', value='other')])[0]
    assert not read_only.successful and cfg.value.robot == 'arm'
    assert len(seen) == 1
    node.destroy_node()


def test_undeclared_parameters_are_named(context):
    qos = 'qos_overrides./joint_states.subscription.reliability'
    node = _node(context, robot='arm', use_sim_time=False, rate_hzz=5.0, **{qos: 'reliable'})
    declare_config(node, Demo)
    with pytest.raises(ParameterError, match=r"'rate_hzz'.*did you mean 'rate_hz'"):
        check_undeclared(node, entities_created=False)
    node.destroy_node()
    node = _node(context, robot='arm', **{qos: 'reliable'})
    declare_config(node, Demo)
    check_undeclared(node, entities_created=False)  # entities not created yet: their QoS waits
    with pytest.raises(ParameterError, match='joint_states'):
        check_undeclared(node)  # no such subscription: a typo too
    node.destroy_node()
