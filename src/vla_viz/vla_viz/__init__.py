"""Views of the VLA graph: rviz markers (marker_node) and a browser view (web_view, rerun-sdk)."""
