"""The `hand-pose` command line. Each subcommand lives in the module that owns the work and
exposes `add_arguments(parser)` and `run(args) -> int`; this file only wires them up.

Subcommands that report numbers take --json and print exactly one JSON object on stdout;
progress and logs go to stderr.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported only when their subcommand runs
# (or for --help of that subcommand), so `hand-pose info` does not pay for ROS imports.
COMMANDS = {
    "info": ("hand_pose_ros.inference.info", "print a checkpoint's or ONNX file's model config"),
    "show": ("hand_pose_ros.data.show", "write a PNG grid of dataset samples with keypoints"),
    "synth": ("hand_pose_ros.data.synthetic.cli", "generate a synthetic depth-hand dataset on disk"),
    "train": ("hand_pose_ros.training.cli", "train SRNet"),
    "eval": ("hand_pose_ros.evaluation.cli", "run a model on a test split, score result files, plot"),
    "export": ("hand_pose_ros.inference.export", "export a checkpoint to ONNX (and TensorRT)"),
    "bench": ("hand_pose_ros.inference.bench", "benchmark backends and the per-frame pipeline"),
    "run": ("hand_pose_ros.ros.run", "start the nodes of pose.launch.py from Python (no ros2 launch)"),
    "demo": ("hand_pose_ros.ros.demo", "the main job: synthetic camera -> pose -> retarget, report"),
    "record": ("hand_pose_ros.ros.record", "record a session (depth, CameraInfo, keypoints, commands) to MCAP"),
    "replay": ("hand_pose_ros.ros.replay", "publish a recorded session again (recorded rate, --rate, --loop)"),
    "check-hand": ("hand_pose_ros.retarget.check_hand",
                   "check a robot hand spec against a URDF (frames, limits, joint motion, poses)"),
}


def _load(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise SystemExit(f"hand-pose {name}: not available in this build ({module_name} missing)")
        raise


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="hand-pose",
        description="Depth-based 3D hand pose (SRNet): data, training, evaluation, export, benchmarks "
                    "and the ROS 2 pipeline. `hand-pose COMMAND --help` for each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(p)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
