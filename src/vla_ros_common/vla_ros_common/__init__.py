"""ROS 2 helpers shared by every node of the VLA suite (the thin layer over vla_core)."""
