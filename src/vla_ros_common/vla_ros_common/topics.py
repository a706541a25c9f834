"""Introspection of a running graph: message classes by type name, QoS matched to publishers."""

from __future__ import annotations

import importlib

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from vla_ros_common import qos

__all__ = ['message_class', 'subscription_qos_for']


def message_class(type_name: str) -> type:
    """``'sensor_msgs/msg/Image'`` -> the class; ValueError naming what is missing."""
    parts = type_name.split('/')
    if len(parts) != 3:
        raise ValueError(f"message type '{type_name}' is not of the form pkg/msg/Type")
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError):
        raise ValueError(
            f"message type '{type_name}' is not installed (is package '{package}' built and "
            'sourced?)'
        ) from None


def subscription_qos_for(node: Node, topic: str, depth: int = 10) -> QoSProfile:
    """A subscription QoS that matches every current publisher of ``topic``.

    Transient-local publishers (latched topics such as /tf_static) get a transient-local reader so
    their history arrives; best-effort publishers get a best-effort reader; otherwise reliable.
    """
    infos = node.get_publishers_info_by_topic(topic)
    if any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos):
        return qos.TF_STATIC_IN if topic.endswith('tf_static') else qos.LATCHED
    if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos):
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
