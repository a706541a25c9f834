"""QoS profiles by role (REP 2003), chosen once here and passed in by every node.

Drivers publish sensor data reliably; consumers subscribe best-effort keep-last, which matches both
reliable and best-effort publishers. Latched data (static TF, robot description, the instruction) is
reliable + transient-local so late joiners get it. Every entity should be created with
``qos_overrides()`` so users can change a profile through parameters without touching code.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

__all__ = [
    'ACTION_CHUNK',
    'CLOCK',
    'COMMAND',
    'DIAGNOSTICS',
    'ESTOP_IN',
    'LATCHED',
    'SENSOR_IN',
    'SENSOR_OUT',
    'TF',
    'TF_STATIC_IN',
    'TF_STATIC_OUT',
    'qos_overrides',
]


def _profile(
    depth: int,
    reliability: ReliabilityPolicy,
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE,
) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliability,
        durability=durability,
    )


# A sensor driver (camera, IMU, joint states) publishing.
SENSOR_OUT = _profile(5, ReliabilityPolicy.RELIABLE)
# A consumer of sensor data: newest data matters, never stall the driver.
SENSOR_IN = _profile(5, ReliabilityPolicy.BEST_EFFORT)
# Commands to actuators: only the newest one is meaningful, but it must arrive.
COMMAND = _profile(1, ReliabilityPolicy.RELIABLE)
# An e-stop input: best-effort matches reliable and best-effort publishers alike (buttons and
# gamepads often publish best-effort; a reliable subscription silently ignores those). A lost
# sample is the publisher's to repeat: buttons publish their state periodically, and a reliable
# publisher on one host gets reliable-like delivery over shared memory anyway.
ESTOP_IN = _profile(10, ReliabilityPolicy.BEST_EFFORT)
# Action chunks: a few in flight so a late consumer still sees the newest ones in order.
ACTION_CHUNK = _profile(4, ReliabilityPolicy.RELIABLE)
# Latched data: robot description, the current instruction, episode state.
LATCHED = _profile(1, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
# /tf as tf2_ros uses it.
TF = _profile(100, ReliabilityPolicy.RELIABLE)
# /tf_static: every publisher's full set is latched; listeners keep many publishers' sets.
TF_STATIC_OUT = _profile(1, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
TF_STATIC_IN = _profile(100, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
# /diagnostics as diagnostic_updater uses it.
DIAGNOSTICS = _profile(10, ReliabilityPolicy.RELIABLE)
# /clock from a simulator (rclpy's time source subscribes best-effort; reliable matches it).
CLOCK = _profile(1, ReliabilityPolicy.RELIABLE)


def qos_overrides() -> QoSOverridingOptions:
    """Let users override history, depth, reliability and durability per topic by parameter."""
    return QoSOverridingOptions.with_default_policies()
