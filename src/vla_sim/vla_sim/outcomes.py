"""Outcomes of closed-loop episodes and their report, shared by every evaluation (in-process,
through the ROS graph, the sim node's own episode log).

Each episode records how it went (closest approach of the tool to the named block, how far that
block and the others moved, final distance to the target), and failures are counted by kind: never
reached the block, moved another block, pushed it closer but not in. The report prints success per
task with a Wilson 95 % interval and writes ``results.json`` (every (task, seed) episode) and a
summary plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path

import numpy as np

from vla_sim.scene import BLOCK_COLORS

__all__ = [
    'EpisodeOutcome',
    'EpisodeProbe',
    'EpisodeRecorder',
    'failure_modes',
    'summary_lines',
    'write_report',
]

# A tool centre this far from the block centre never touched it (half size 2 cm + finger).
_NO_CONTACT_M = 0.045
_DISTURBED_M = 0.02


@dataclass(frozen=True)
class EpisodeOutcome:
    task: str
    seed: int
    success: bool
    sim_time: float
    chunks: int
    mean_latency_ms: float
    # Where a failure went wrong: never reached the block, pushed it off line, or moved the others.
    start_distance_m: float  # named block to target centre, at reset
    final_distance_m: float  # the same at the end
    closest_approach_m: float  # tool centre to the named block's centre (xy), over the episode
    block_travel_m: float  # net xy displacement of the named block
    others_travel_m: float  # largest net xy displacement of any other block


class EpisodeProbe:
    """Watches one episode in a sim (privileged state): the layout at reset, the tool's closest
    approach to the named block; call :meth:`step` after every control period."""

    def __init__(self, sim, block: str, target_xy: np.ndarray) -> None:
        self.sim = sim
        self.block = block
        self.target_xy = np.array(target_xy, dtype=np.float64)
        self.start = {c: sim.block_pose(c).position[:2].copy() for c in BLOCK_COLORS}
        self.closest = math.inf

    def step(self) -> None:
        gap = self.sim.ee_pose().position[:2] - self.sim.block_pose(self.block).position[:2]
        self.closest = min(self.closest, float(np.linalg.norm(gap)))

    def outcome(
        self,
        task: str,
        seed: int,
        success: bool,
        sim_time: float,
        chunks: int = 0,
        mean_latency_ms: float = math.nan,
    ) -> EpisodeOutcome:
        end = {c: self.sim.block_pose(c).position[:2] for c in BLOCK_COLORS}
        travel = {c: float(np.linalg.norm(end[c] - self.start[c])) for c in BLOCK_COLORS}
        return EpisodeOutcome(
            task, int(seed), bool(success), float(sim_time), int(chunks), float(mean_latency_ms),
            start_distance_m=float(np.linalg.norm(self.start[self.block] - self.target_xy)),
            final_distance_m=float(np.linalg.norm(end[self.block] - self.target_xy)),
            closest_approach_m=self.closest,
            block_travel_m=travel[self.block],
            others_travel_m=max(v for c, v in travel.items() if c != self.block),
        )  # fmt: skip


def failure_modes(failed: Sequence[EpisodeOutcome]) -> dict[str, float | int]:
    """Counts of the ways episodes failed, and how far the block ended from the target."""
    return {
        'never_reached_block': sum(o.closest_approach_m > _NO_CONTACT_M for o in failed),
        'block_not_moved': sum(o.block_travel_m < _DISTURBED_M for o in failed),
        'other_block_moved': sum(o.others_travel_m >= _DISTURBED_M for o in failed),
        'pushed_closer': sum(
            o.final_distance_m < o.start_distance_m - _DISTURBED_M for o in failed
        ),
        'median_final_distance_m': round(float(np.median([o.final_distance_m for o in failed])), 3),
    }


def summary_lines(
    outcomes: Sequence[EpisodeOutcome], tasks: Sequence[str]
) -> tuple[dict[str, dict], list[str]]:
    """Per task: success count, Wilson 95 % interval and failure modes; and the table's lines."""
    from vla_core.stats import wilson_interval

    summary: dict[str, dict] = {}
    lines = []
    for task in tasks:
        ok = [o.success for o in outcomes if o.task == task]
        if not ok:
            continue
        lo, hi = wilson_interval(sum(ok), len(ok))
        summary[task] = {'success': sum(ok), 'episodes': len(ok), 'wilson95': [lo, hi]}
        times = [o.sim_time for o in outcomes if o.task == task and o.success]
        summary[task]['mean_time_to_success_s'] = round(float(np.mean(times)), 2) if times else None
        lines.append(
            f'{task:<12} {sum(ok):4d}/{len(ok):<4d} = {100 * sum(ok) / len(ok):5.1f} % '
            f'(Wilson 95 % CI {100 * lo:.1f}-{100 * hi:.1f} %)'
            + (f', mean time to success {np.mean(times):.2f} s' if times else '')
        )
        failed = [o for o in outcomes if o.task == task and not o.success]
        if failed:
            modes = failure_modes(failed)
            summary[task]['failures'] = modes
            lines.append('    failures: ' + ', '.join(f'{k} {v}' for k, v in modes.items()))
    return summary, lines


def write_report(
    outcomes: Sequence[EpisodeOutcome],
    tasks: Sequence[str],
    out: Path,
    label: str,
    settings: dict,
    extra: dict | None = None,
) -> dict:
    """Print the table, write ``results.json`` (``extra`` merged in) and ``success.png``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    summary, lines = summary_lines(outcomes, tasks)
    for line in lines:
        print(line)
    latencies = [o.mean_latency_ms for o in outcomes if math.isfinite(o.mean_latency_ms)]
    if latencies:
        print(f'mean inference latency {np.mean(latencies):.1f} ms per chunk')
    out.mkdir(parents=True, exist_ok=True)
    results = {
        'artifact': label, 'settings': settings, 'summary': summary, **(extra or {}),
        'episodes': [asdict(o) for o in outcomes],
    }  # fmt: skip
    (out / 'results.json').write_text(json.dumps(results, indent=2))
    tasks = [t for t in tasks if t in summary]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(tasks), 3.5))
    rates = [summary[t]['success'] / summary[t]['episodes'] for t in tasks]
    errors = np.array([[r - summary[t]['wilson95'][0], summary[t]['wilson95'][1] - r]
                       for t, r in zip(tasks, rates, strict=True)]).reshape(-1, 2).T  # fmt: skip
    ax.bar(tasks, rates, yerr=errors, capsize=6, color='tab:blue')
    ax.axhline(0.8, color='tab:red', ls='--', lw=1, label='80 % target')
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate (Wilson 95 % CI)')
    per_task = len(outcomes) // max(len(tasks), 1)
    ax.set_title(f'closed-loop success, {per_task} seeds per task')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(out / 'success.png', dpi=120)
    plt.close(fig)
    return results


class EpisodeRecorder:
    """The outcomes of a stream of episodes (the sim node's): one probe per episode, each
    outcome appended to a JSON-lines log with its robot-clock span, and the table at the end."""

    def __init__(self, log: str | Path | None = None) -> None:
        self.outcomes: list[EpisodeOutcome] = []
        self._log = Path(log) if log else None
        if self._log is not None:
            self._log.parent.mkdir(parents=True, exist_ok=True)
        self._probe: EpisodeProbe | None = None
        self._start = math.nan

    def start(self, sim, block: str, target_xy: np.ndarray, start_stamp: float) -> None:
        self._probe = EpisodeProbe(sim, block, target_xy)
        self._start = start_stamp

    def step(self) -> None:
        if self._probe is not None:
            self._probe.step()

    def finish(
        self, task: str, seed: int, success: bool, sim_time: float, end_stamp: float, **extra
    ) -> EpisodeOutcome | None:
        """Record the episode's outcome (None if no episode was started)."""
        if self._probe is None:
            return None
        outcome = self._probe.outcome(task, seed, success, sim_time)
        self._probe = None
        self.outcomes.append(outcome)
        if self._log is not None:
            record = {**extra, **asdict(outcome), 'start_stamp': self._start}
            record['end_stamp'] = end_stamp
            with self._log.open('a') as f:
                f.write(json.dumps(record) + '\n')
        return outcome

    def table(self) -> list[str]:
        tasks = list(dict.fromkeys(o.task for o in self.outcomes))
        return summary_lines(self.outcomes, tasks)[1]
