"""Pure core of the residual PID/MPC tracking controller (issue 5): numpy + OSQP, no rclpy.

``ResidualController`` is the entry point a ROS node wraps; ``DeadlineLoop`` runs it at a fixed
rate on its own thread. See ``controller.py`` for the per-tick contract.
"""

from vla_core.control.controller import (
    ControlCommand,
    ControllerConfig,
    ControllerMetrics,
    GravityFn,
    JointSample,
    ResidualController,
)
from vla_core.control.loop import DeadlineLoop, LoopConfig, LoopStats, sleep_until_ns
from vla_core.control.mpc import JointMpc, MpcConfig, MpcResult
from vla_core.control.pid import JointPid, PidConfig, PidTerms
from vla_core.control.reference import ChunkTracker, Reference, TrackerConfig, TrackerMetrics
from vla_core.control.residual import (
    FEATURES_PER_JOINT,
    ResidualConfig,
    ResidualFn,
    ResidualLayer,
    residual_features,
)
from vla_core.control.safety import (
    ClockTick,
    ClockWatchdog,
    CommandLimiter,
    EStop,
    SafetyConfig,
    SafetyLimits,
    Watchdog,
    WatchdogStatus,
)

__all__ = [
    'FEATURES_PER_JOINT',
    'ChunkTracker',
    'ClockTick',
    'ClockWatchdog',
    'CommandLimiter',
    'ControlCommand',
    'ControllerConfig',
    'ControllerMetrics',
    'DeadlineLoop',
    'EStop',
    'GravityFn',
    'JointMpc',
    'JointPid',
    'JointSample',
    'LoopConfig',
    'LoopStats',
    'MpcConfig',
    'MpcResult',
    'PidConfig',
    'PidTerms',
    'Reference',
    'ResidualConfig',
    'ResidualController',
    'ResidualFn',
    'ResidualLayer',
    'SafetyConfig',
    'SafetyLimits',
    'TrackerConfig',
    'TrackerMetrics',
    'Watchdog',
    'WatchdogStatus',
    'residual_features',
    'sleep_until_ns',
]
