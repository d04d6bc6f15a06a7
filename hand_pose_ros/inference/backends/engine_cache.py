"""TensorRT engine cache and build planning: plain Python, testable without TensorRT.

An engine is only valid for the TensorRT version and the GPU it was built on (its name and
compute capability; on a Jetson also the L4T release, which JetPack upgrades change together
with CUDA and the driver), the build recipe (builder flags, layers pinned to FP32, profiles),
the precision and batch profile it was built for, and the exact ONNX file (and INT8
calibration data).
The same cache holds ONNX Runtime's INT8-quantised models (runtime 'onnxruntime', device
'cpu'), which depend on the same kind of facts.
All of that goes into an EngineKey; the cache stores `<name>.engine` plus a `<name>.json`
sidecar holding the key, the engine's size and sha256, and rejects (then rebuilds) a file
whose sidecar is missing, whose key differs, or whose bytes are truncated or corrupt.

Default directory: $HAND_POSE_ENGINE_CACHE, else ~/.cache/hand_pose_ros/engines.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .base import log

DEFAULT_CACHE_DIR = "~/.cache/hand_pose_ros/engines"
CACHE_ENV = "HAND_POSE_ENGINE_CACHE"

# TensorRT build defaults: the one source for the backend, `hand-pose export --tensorrt`,
# the 'auto' choice and the trtexec equivalent.
DEFAULT_PRECISION = "fp16"
DEFAULT_BATCH_PROFILE = (1, 1, 32)   # (min, opt, max) batch: tuned for one hand per frame
DEFAULT_WORKSPACE_MB = 2048
CALIBRATION_BATCH = 32               # INT8: crops per calibration batch (= the calibration profile's shape)
# Bump when build_engine changes what it asks TensorRT for in a way the recipe fields below
# do not show (another API call, another network flag): engines built before are rebuilt.
BUILD_RECIPE_VERSION = 2
L4T_RELEASE_FILE = "/etc/nv_tegra_release"


def default_cache_dir() -> Path:
    return Path(os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on."""
    onnx_sha256: str
    precision: str                       # fp32 | fp16 | int8
    batch_profile: tuple[int, int, int]  # (min, opt, max) batch of the optimisation profile
    runtime_version: str                 # TensorRT's version (or onnxruntime's)
    device_name: str                     # the GPU's name ('cpu' for onnxruntime)
    workspace_mb: int
    calibration_sha256: str = ""         # INT8 only: the calibration crops
    runtime: str = "tensorrt"            # tensorrt | onnxruntime
    build_recipe: str = ""               # build_recipe(): builder flags, FP32 layers, profiles
    compute_capability: str = ""         # '8.7' (Orin), '9.0' (H100/H200): a plan runs on its own SM only
    platform_release: str = ""           # Jetson: 'L4T R36.4.3' (JetPack's TensorRT/CUDA/driver set); else ''

    def __post_init__(self):
        low, opt, high = self.batch_profile
        if not 1 <= low <= opt <= high:
            raise ValueError(f"batch profile must be 1 <= min <= opt <= max, got {self.batch_profile}")
        object.__setattr__(self, "batch_profile", (int(low), int(opt), int(high)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["batch_profile"] = list(self.batch_profile)
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def filename(self) -> str:
        low, opt, high = self.batch_profile
        runtime = "trt" if self.runtime == "tensorrt" else _slug(self.runtime)
        return (f"srnet-{self.onnx_sha256[:12]}-{self.precision}-b{low}_{opt}_{high}-{_slug(self.device_name)}"
                f"-{runtime}{_slug(self.runtime_version)}-{self.digest()[:8]}")


class EngineCache:
    def __init__(self, directory=None):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".write-test-"):
                pass
        except OSError as e:
            raise RuntimeError(f"TensorRT engine cache directory {self.directory} is not writable ({e}); "
                               f"pass another cache_dir (or set ${CACHE_ENV})") from None

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / (key.filename() + ".engine")

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.directory / (key.filename() + ".json")

    def load(self, key: EngineKey) -> bytes | None:
        """The cached engine's bytes, or None (with the reason logged) when there is no
        valid one for this key."""
        engine, sidecar = self.engine_path(key), self.sidecar_path(key)
        if not engine.exists():
            log.info("TensorRT engine cache: no engine for this model/GPU/precision yet (%s)", engine)
            return None
        problem = None
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            meta, problem = None, "its sidecar file is missing or unreadable"
        if meta is not None:
            data = engine.read_bytes()
            if meta.get("key") != key.to_dict():
                problem = "its sidecar describes another model / GPU / TensorRT version"
            elif len(data) != meta.get("bytes"):
                problem = f"it is truncated ({len(data)} of {meta.get('bytes')} bytes)"
            elif hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                problem = "its contents do not match the recorded sha256 (corrupt)"
            else:
                return data
        log.warning("TensorRT engine cache: %s is unusable (%s): rebuilding", engine, problem)
        self.remove(key)
        return None

    def store(self, key: EngineKey, data: bytes) -> Path:
        """Write atomically: the engine first, then its sidecar (a crash in between leaves
        an engine without sidecar, which load() rejects)."""
        engine = self.engine_path(key)
        _atomic_write(engine, data)
        meta = {"key": key.to_dict(), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        _atomic_write(self.sidecar_path(key), json.dumps(meta, indent=1, sort_keys=True).encode())
        return engine

    def remove(self, key: EngineKey) -> None:
        for path in (self.engine_path(key), self.sidecar_path(key)):
            path.unlink(missing_ok=True)

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes | None],
                     deserialize: Callable[[bytes], object] | None = None, force: bool = False,
                     what: str = "TensorRT engine"):
        """(engine object, path, built?) for `key`: from the cache when a valid file is
        there and deserialises, else from build() (which may take minutes), then cached.
        deserialize(bytes) returns the engine or None when TensorRT rejects the bytes."""
        deserialize = deserialize or (lambda data: data)
        if not force:
            data = self.load(key)
            if data is not None:
                engine = deserialize(data)
                if engine is not None:
                    log.info("%s cache: using %s", what, self.engine_path(key))
                    return engine, self.engine_path(key), False
                log.warning("%s cache: %s does not deserialise (built by another %s version?): "
                            "rebuilding", what, self.engine_path(key), key.runtime)
                self.remove(key)
        low, opt, high = key.batch_profile
        log.info("%s: building %s for batch %d..%d (opt %d) on '%s' with %s %s; this takes minutes "
                 "the first time and is cached in %s", what, key.precision.upper(), low, high, opt,
                 key.device_name, key.runtime, key.runtime_version, self.directory)
        start = time.perf_counter()
        data = build()
        if not data:
            raise RuntimeError(f"{what}: the {key.runtime} build failed (see its messages above)")
        data = bytes(data)
        path = self.store(key, data)
        log.info("%s: built in %.0f s, saved %s (%.1f MB)", what, time.perf_counter() - start, path, len(data) / 1e6)
        engine = deserialize(data)
        if engine is None:
            raise RuntimeError(f"{what}: {key.runtime} cannot load what it just built ({path})")
        return engine, path, True


def build_recipe(plan: "PrecisionPlan", batch_profile, calibration_profile=None) -> str:
    """What build_engine asks TensorRT for, as one key string: the recipe version, the
    builder flags set and cleared, the layer types pinned to FP32, the optimisation
    profile and (INT8) the calibration profile. Two engines with the same ONNX file but
    another recipe are different engines."""
    recipe = {"version": BUILD_RECIPE_VERSION, "set_flags": sorted(plan.set_flags),
              "clear_flags": sorted(plan.clear_flags), "fp32_layers": sorted(plan.fp32_layer_types),
              "profile": [int(b) for b in batch_profile],
              "calibration_profile": [int(b) for b in calibration_profile] if calibration_profile else None}
    return f"v{BUILD_RECIPE_VERSION}-" + hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def l4t_release(path=L4T_RELEASE_FILE) -> str:
    """The Jetson Linux (L4T) release, e.g. 'L4T R36.4.3', from /etc/nv_tegra_release
    ('# R36 (release), REVISION: 4.3, GCID: ..., BOARD: ...'); '' off a Jetson. JetPack
    upgrades change TensorRT, CUDA and the GPU driver together, so a plan from another L4T
    release is not to be trusted even when the TensorRT version string matches."""
    try:
        first = Path(path).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return ""
    match = re.search(r"R(\d+)\s*\(\w+\),\s*REVISION:\s*([\d.]+)", first)
    if not match:
        return f"L4T {_slug(first)[:40]}"  # unknown layout: still tells releases apart
    return f"L4T R{match.group(1)}.{match.group(2)}"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- build planning
@dataclass(frozen=True)
class PrecisionPlan:
    precision: str
    set_flags: tuple[str, ...]      # trt.BuilderFlag names to set
    clear_flags: tuple[str, ...]    # ... and to clear
    fp32_layer_types: tuple[str, ...]   # trt.LayerType names pinned to FP32
    notes: tuple[str, ...] = ()


# Layers whose FP16 / INT8 versions cost accuracy here (ros2.md: InstanceNorm loses accuracy in
# FP16 unless kept in FP32) or are the decoders' reductions over 4096 pixels; cheap to keep FP32.
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")


def plan_precision(requested: str, fast_fp16: bool = True, fast_int8: bool = True) -> PrecisionPlan:
    """Builder flags for a requested precision on a GPU with / without fast FP16 / INT8."""
    notes = []
    if requested == "fp32":
        # TF32 is on by default on Ampere and later: clear it for true FP32.
        return PrecisionPlan("fp32", (), ("TF32",), ())
    if requested == "fp16":
        if not fast_fp16:
            notes.append("this GPU has no fast FP16: the FP16 engine may be slower than FP32")
        return PrecisionPlan("fp16", ("FP16", "PREFER_PRECISION_CONSTRAINTS"), (), FP32_LAYER_TYPES, tuple(notes))
    if requested == "int8":
        if not fast_int8:
            raise ValueError("this GPU has no fast INT8 support; build fp16 instead")
        # FP16 too, so the layers TensorRT does not quantise fall back to FP16, not FP32.
        return PrecisionPlan("int8", ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), (), FP32_LAYER_TYPES)
    raise ValueError(f"TensorRT precision {requested!r} is not one of fp32, fp16, int8")


class CalibrationBatches:
    """INT8 calibration data as the fixed-size batches TensorRT's calibrator asks for.

    crops [N,1,m,m] float32 (real normalised crops: the activation ranges TensorRT measures
    must be those of real inputs). A partial last batch is dropped (the calibrator's batch
    size is fixed)."""

    def __init__(self, crops: np.ndarray, batch_size: int = 32, input_size: int = 128):
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (1, input_size, input_size):
            raise ValueError(f"calibration crops must be [N,1,{input_size},{input_size}], got {crops.shape}")
        if not np.isfinite(crops).all():
            raise ValueError("calibration crops contain NaN or inf")
        if batch_size < 1 or len(crops) < batch_size:
            raise ValueError(f"need at least one full calibration batch: {len(crops)} crops, batch size {batch_size}")
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.batch_size = int(batch_size)
        dropped = len(crops) % batch_size
        if dropped:
            log.info("INT8 calibration: dropping the last %d of %d crops (batch size %d)", dropped, len(crops), batch_size)

    def __len__(self) -> int:
        return len(self.crops) // self.batch_size

    def __iter__(self):
        for i in range(len(self)):
            yield self.crops[i * self.batch_size:(i + 1) * self.batch_size]  # contiguous view

    def sha256(self) -> str:
        digest = hashlib.sha256(self.crops.tobytes())
        digest.update(str(self.batch_size).encode())
        return digest.hexdigest()


def calibration_crops(source, config, count: int) -> np.ndarray:
    """INT8 calibration crops [N,1,m,m]: `source` (an array or a .npy file of real dataset
    crops), else `count` crops of synthetic scenes (with a warning: fine for timing, but a
    deployed model should be calibrated on crops like the ones it will see)."""
    if source is None:
        from ..sample_inputs import realistic_crops
        log.warning("INT8 calibration: no calibration crops given; using %d synthetic-scene crops "
                    "(pass real dataset crops for a deployed model)", count)
        return realistic_crops(count, config.input_size, config.half_cube_mm, seed=123)
    if isinstance(source, (str, os.PathLike)):
        try:
            return np.load(source)
        except (OSError, ValueError) as e:
            raise ValueError(f"calibration crops file {source}: {e}") from None
    return np.asarray(source)


def trtexec_command(onnx_path, engine_path, precision: str = DEFAULT_PRECISION, batch_profile=DEFAULT_BATCH_PROFILE,
                    input_size: int = 128, workspace_mb: int = DEFAULT_WORKSPACE_MB) -> str:
    """The equivalent trtexec command line (for people building engines by hand). trtexec
    cannot pin layers to FP32 by type (only by name), so its FP16 engine runs the
    normalisation layers in FP16 unless they are listed with --layerPrecisions."""
    low, opt, high = batch_profile
    shape = lambda b: f"depth:{b}x1x{input_size}x{input_size}"  # noqa: E731
    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
             f"--minShapes={shape(low)}", f"--optShapes={shape(opt)}", f"--maxShapes={shape(high)}",
             f"--memPoolSize=workspace:{workspace_mb}M"]
    if precision == "fp16":
        parts += ["--fp16"]
    elif precision == "int8":
        parts += ["--int8", "--fp16", "--calib=<calibration cache>"]
    elif precision == "fp32":
        parts += ["--noTF32"]
    return " ".join(parts)
