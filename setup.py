"""ament_python package: `colcon build` on a ROS 2 install, `pip install -e .` in the dev venv."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_pose_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/hands", glob("config/hands/*")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        # The shipped model and its machine-readable card (figures and the .md card stay in git).
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.pt") + glob("models/*.json")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="hand_pose_ros developers",
    maintainer_email="dev@hand-pose-ros.invalid",
    description="Depth-based 3D hand pose (SRNet) and robot-hand retargeting for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "hand-pose = hand_pose_ros.cli:main",
            "pose_node = hand_pose_ros.ros.pose_node:main",
            "retarget_node = hand_pose_ros.ros.retarget_node:main",
            "synthetic_camera = hand_pose_ros.ros.synthetic_camera:main",
        ],
    },
)
