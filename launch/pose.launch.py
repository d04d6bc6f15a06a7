"""Hand pose from a depth camera, retargeted to a robot hand.

    ros2 launch hand_pose_ros pose.launch.py                          # RealSense topics, LEAP Hand
    ros2 launch hand_pose_ros pose.launch.py use_synthetic_camera:=true rviz:=true
    ros2 launch hand_pose_ros pose.launch.py depth_topic:=/my/depth camera_info_topic:=/my/info \
        backend:=tensorrt robot_hand:=allegro

Which nodes start, with which parameter files, comes from hand_pose_ros/ros/launch_plan.py:
`hand-pose run` (no ros2 launch needed) reads the same plan, and a test checks both agree.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from hand_pose_ros.ros import launch_plan


def _nodes(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name in launch_plan.ARGUMENTS}
    share = get_package_share_directory(launch_plan.PACKAGE)
    # The Fast DDS profile with a shared-memory segment that holds a depth frame (config/fastdds.xml),
    # unless the user set a profile; a camera driver started elsewhere needs it too to send
    # whole frames to best-effort readers.
    env = launch_plan.dds_environment(share)
    actions = []
    for n in launch_plan.plan(values, share):
        parameters = [str(p) for p in n.params_paths(share)]
        if n.overrides:
            parameters.append(dict(n.overrides))
        actions.append(Node(package=n.package, executable=n.executable, name=n.name,
                            parameters=parameters, remappings=list(n.remappings),
                            arguments=list(n.arguments), additional_env=dict(env), output="screen"))
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in launch_plan.ARGUMENTS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
