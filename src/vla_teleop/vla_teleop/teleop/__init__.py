"""Teleoperation sources: pure core (``core``) and input devices (``keyboard``, ``gamepad``,
``leader_arm``); ``vla_teleop.teleop_node`` puts them on ``expert/action_chunk``.

The sim's scripted expert is the fourth expert source: the sim node publishes it on the same
``expert/action_chunk`` topic itself (``expert_rate_hz`` > 0); it needs no teleop node.
"""
