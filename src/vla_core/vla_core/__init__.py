"""Pure algorithms of the VLA suite: numpy/stdlib only, never rclpy or message types."""
