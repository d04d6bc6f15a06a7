"""hand_pose_ros: depth-based 3D hand pose for robot teleoperation (no ROS imports here)."""
__version__ = "0.1.0"
