from dataclasses import dataclass

import pytest
import yaml

from vla_core.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_from_flat,
    config_to_flat,
    iter_params,
    param,
)


@dataclass(frozen=True, kw_only=True)
class Gains(Config):
    kp: float = param(2.0, description='proportional gain', range=(0.0, 100.0))
    limits: tuple[float, ...] = param((1.0, 2.0), description='limits', range=(0.0, 10.0))


@dataclass(frozen=True, kw_only=True)
class Ctrl(Config):
    rate_hz: float = param(500.0, description='loop rate [Hz]', range=(1.0, 2000.0))
    mode: str = param('pid', description='layer', choices=('pid', 'mpc'))
    joints: tuple[str, ...] = param(description='joint names (required)')
    gains: Gains = param(default_factory=Gains, description='gains')
    steps: int = param(3, description='steps', range=(1, 10), read_only=True)

    def validate(self) -> None:
        if len(self.gains.limits) not in (1, len(self.joints)):
            raise ConfigError('gains.limits', 'needs one value or one per joint')


def test_valid_config_is_normalised_and_frozen():
    cfg = Ctrl(joints=['a', 'b'], rate_hz=100)  # list -> tuple, int -> float
    assert cfg.joints == ('a', 'b')
    assert isinstance(cfg.rate_hz, float)
    with pytest.raises(AttributeError):
        cfg.rate_hz = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ('kwargs', 'field', 'fragment'),
    [
        ({'rate_hz': 0.0}, 'rate_hz', 'outside the allowed range [1.0, 2000.0]'),
        ({'mode': 'lqr'}, 'mode', "not one of ['pid', 'mpc']"),
        ({'rate_hz': 'fast'}, 'rate_hz', 'expected float'),
        ({'steps': 2.5}, 'steps', 'expected int'),
        ({'steps': True}, 'steps', 'expected int'),
        ({'rate_hz': float('nan')}, 'rate_hz', 'NaN'),
        ({'joints': 'ab'}, 'joints', 'expected a list'),
    ],
)
def test_invalid_values_name_the_field(kwargs, field, fragment):
    base = {'joints': ('a', 'b')}
    with pytest.raises(ConfigError) as info:
        Ctrl(**{**base, **kwargs})
    assert info.value.field == field
    assert fragment in str(info.value)


def test_yaml11_exponent_strings_are_floats():
    """PyYAML (YAML 1.1) reads ``lr: 1e-3`` as the string '1e-3'; it means a number."""
    data = yaml.safe_load('rate_hz: 1e3\njoints: [a, b]')
    assert data['rate_hz'] == '1e3'
    assert config_from_dict(Ctrl, data).rate_hz == 1000.0
    with pytest.raises(ConfigError, match='expected float'):
        config_from_dict(Ctrl, {'rate_hz': '1e', 'joints': ['a', 'b']})


def test_cross_field_validation_and_nested_range():
    with pytest.raises(ConfigError, match=r'gains\.limits'):
        Ctrl(joints=('a', 'b', 'c'))
    with pytest.raises(ConfigError) as info:
        config_from_dict(Ctrl, {'joints': ['a', 'b'], 'gains': {'kp': -1.0}})
    assert info.value.field == 'gains.kp'


def test_dict_and_flat_round_trip_and_errors():
    cfg = config_from_flat(Ctrl, {'joints': ['a'], 'gains.kp': 5, 'gains.limits': [3.0]})
    assert cfg.gains.kp == 5.0
    assert config_from_flat(Ctrl, config_to_flat(cfg)) == cfg
    with pytest.raises(ConfigError, match="'gians'"):
        config_from_dict(Ctrl, {'joints': ['a'], 'gians': {}})
    with pytest.raises(ConfigError, match="'joints': is required"):
        config_from_dict(Ctrl, {})


def test_iter_params_describes_every_leaf():
    specs = {s.name: s for s in iter_params(Ctrl)}
    assert set(specs) == {'rate_hz', 'mode', 'joints', 'gains.kp', 'gains.limits', 'steps'}
    assert specs['joints'].required and specs['joints'].element_type is str
    assert specs['steps'].read_only and specs['steps'].range == (1, 10)
    assert specs['mode'].choices == ('pid', 'mpc')
    assert specs['gains.limits'].default == (1.0, 2.0)


def test_fields_without_param_metadata_are_refused():
    @dataclass(frozen=True, kw_only=True)
    class Bad(Config):
        x: float = 1.0

    with pytest.raises(TypeError, match='param'):
        list(iter_params(Bad))
