"""Small statistics helpers for reporting benchmark results."""

from __future__ import annotations

from dataclasses import dataclass
import math

__all__ = ['SuccessRate', 'sign_test', 'success_rate', 'wilson_interval']

# Two-sided standard-normal quantiles for the usual confidence levels; avoids a scipy dependency.
_Z = {0.80: 1.2815515655446004, 0.90: 1.6448536269514722, 0.95: 1.959963984540054,
      0.99: 2.5758293035489004}  # fmt: skip


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes,
    which is exactly where expert benchmarks live.
    """
    if trials <= 0:
        raise ValueError(f'trials must be positive, got {trials}')
    if not 0 <= successes <= trials:
        raise ValueError(f'successes must be in [0, {trials}], got {successes}')
    if confidence not in _Z:
        raise ValueError(f'confidence must be one of {sorted(_Z)}, got {confidence}')
    z = _Z[confidence]
    n = float(trials)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    # Clamp rounding noise so that 0/n gives exactly 0 and n/n exactly 1.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True)
class SuccessRate:
    """A success count with its Wilson interval, printable as a report line."""

    successes: int
    trials: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def rate(self) -> float:
        return self.successes / self.trials

    def __str__(self) -> str:
        pct = round(self.confidence * 100)
        return (
            f'{self.successes}/{self.trials} = {100 * self.rate:.1f} % '
            f'(Wilson {pct} % CI {100 * self.low:.1f}-{100 * self.high:.1f} %)'
        )


def success_rate(successes: int, trials: int, confidence: float = 0.95) -> SuccessRate:
    lo, hi = wilson_interval(successes, trials, confidence)
    return SuccessRate(successes, trials, lo, hi, confidence)


def sign_test(only_a: int, only_b: int) -> float:
    """Two-sided exact sign test (McNemar's exact test) for paired successes: ``only_a`` pairs
    succeeded only under A, ``only_b`` only under B. The p-value of a difference at least this
    large if A and B were equally good; 1.0 without discordant pairs."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f'counts must be non-negative, got {only_a}, {only_b}')
    n = only_a + only_b
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)
