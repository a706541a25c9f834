"""Demonstration data without ROS: rosbag2 MCAP bags (writing, recovery), the episode store,
the training dataset (format, build from bags on stamps) and its LeRobot v3 export."""
