"""Policy inference for the VLA suite (backends, engine cache; the ROS node lives beside them)."""
