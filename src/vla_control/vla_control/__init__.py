"""Residual PID/MPC tracking controller: training and ONNX evaluation of the learned residual.

The control core is ``vla_core.control``; the ROS node wraps ``ResidualController`` from there.
"""
