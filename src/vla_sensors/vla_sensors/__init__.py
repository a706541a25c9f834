"""ROS-free camera and IMU drivers: capture threads, stamping, calibration, counters.

The lifecycle nodes are thin wrappers around :class:`vla_sensors.camera.CameraDriver` and
:class:`vla_sensors.imu.ImuSerialDriver`; nothing here imports rclpy.
"""
