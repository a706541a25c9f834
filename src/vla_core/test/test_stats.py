import pytest

from vla_core.stats import success_rate, wilson_interval


@pytest.mark.parametrize(
    ('k', 'n', 'lo', 'hi'),
    [
        # Reference values of the Wilson score interval at z = 1.96.
        (0, 10, 0.0, 0.27753),
        (10, 10, 0.72247, 1.0),
        (5, 10, 0.23659, 0.76341),
        (200, 200, 0.98115, 1.0),
        (195, 200, 0.94282, 0.98928),
    ],
)
def test_wilson_reference_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-5)


def test_wilson_contains_the_estimate_and_narrows_with_n() -> None:
    small = wilson_interval(9, 10)
    large = wilson_interval(900, 1000)
    assert small[0] < 0.9 < small[1]
    assert large[0] < 0.9 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_wilson_higher_confidence_is_wider() -> None:
    lo95, hi95 = wilson_interval(7, 20, 0.95)
    lo99, hi99 = wilson_interval(7, 20, 0.99)
    assert lo99 < lo95 and hi99 > hi95


@pytest.mark.parametrize(
    ('k', 'n', 'conf'), [(1, 0, 0.95), (-1, 5, 0.95), (6, 5, 0.95), (1, 5, 0.5)]
)
def test_wilson_rejects_bad_input(k: int, n: int, conf: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, conf)


def test_success_rate_report() -> None:
    r = success_rate(195, 200)
    assert r.rate == pytest.approx(0.975)
    assert str(r) == '195/200 = 97.5 % (Wilson 95 % CI 94.3-98.9 %)'


def test_sign_test_matches_the_binomial_tail():
    from vla_core.stats import sign_test

    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert abs(sign_test(0, 5) - 2 / 32) < 1e-12  # 2 * 0.5^5
    assert abs(sign_test(8, 1) - 2 * (1 + 9) / 512) < 1e-12
    assert sign_test(1, 8) == sign_test(8, 1)
