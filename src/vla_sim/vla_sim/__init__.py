"""MuJoCo tabletop arm, push tasks and scripted expert: pure Python, never rclpy.

Rendering is headless: EGL is chosen here, before anything imports mujoco, unless the caller has
already set ``MUJOCO_GL`` (e.g. ``osmesa``).
"""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
