"""The one model-config object: shared by training, export and inference, stored inside every
checkpoint and as ONNX metadata, so a model file says what it needs."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .. import keypoints

NORMS = ("instance", "batch")
# Low-level CNN layouts: "full" = the paper's three 3x3 convs at the input resolution, then
# a stride-2 conv; "strided" = the stride-2 conv first, the rest at map resolution (about
# 4x fewer MACs there: the full-resolution convs dominate a small model's cost).
STEMS = ("full", "strided")
HEATMAP_ACTIVATIONS = ("softmax", "relu")
# The paper's ablation variants (srnet.md).
VARIANTS = ("two_stage", "one_stage", "direct_regression",
            "coordinate_unsupervised", "representation_unsupervised")


# Named architectures: SRNetConfig changes from the paper's full model (the defaults).
# "fast" is the CPU / small-Jetson model (inference/variants.py measured the candidates;
# models/srnet_fast.md has the table): BatchNorm (folds into the convolutions in TensorRT
# and ONNX Runtime), F = 64, a 64 x 64 crop with 32 x 32 maps, hourglass level 3 (32 -> 2),
# both stages kept.
PRESETS: dict[str, dict] = {
    "full": {},
    "fast": {"norm": "batch", "features": 64, "input_size": 64, "map_size": 32, "hourglass_level": 3},
}


def preset_fields(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return dict(PRESETS[name])


# What a model file that has no entry for a field was built with (see SRNetConfig.from_stored).
STORED_BEFORE_FIELD_EXISTED = {"handedness_head": False}

# What network.HandednessHead reads of the predicted joints: the palm plane from the
# first, and the signed offsets from it of the second (a left hand's have the other sign).
PALM_JOINTS = ("wrist", "index_mcp", "middle_mcp", "pinky_mcp")
HANDEDNESS_JOINTS = ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_pip", "index_tip",
                     "middle_pip", "middle_tip", "ring_pip", "ring_tip", "pinky_pip", "pinky_tip")


@dataclass(frozen=True)
class SRNetConfig:
    keypoint_names: tuple[str, ...] = keypoints.CANONICAL  # J = len(keypoint_names)
    features: int = 128            # F
    stages: int = 2
    hourglass_level: int = 4       # level 4 = five poolings, 64 -> 2
    norm: str = "instance"         # instance | batch (batch folds into convs for TensorRT)
    heatmap: str = "softmax"       # softmax (with per-joint temperature) | relu (normalise)
    variant: str = "two_stage"
    input_size: int = 128          # m: the normalised depth crop is 1 x m x m
    map_size: int = 64             # n: representation (heatmap / depth map) size
    decoder_eps: float = 1e-4      # survives FP16 (the release's 1e-14 underflows to 0)
    half_cube_mm: float = 150.0    # crop cube half-size the model was trained with
    handedness_head: bool = True   # a third output: P(left hand) [B] (network.HandednessHead)
    stem: str = "full"             # full | strided (STEMS)
    separable: bool = False        # depthwise-separable 3x3 convs in residuals and heads
    head_convs: int = 3            # 3x3 F->F conv layers in each regression head (paper: 3)
    extra: dict = field(default_factory=dict, compare=False)  # free-form provenance

    def __post_init__(self):
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))
        unknown = [n for n in self.keypoint_names if n not in keypoints.ALL_NAMES]
        if unknown:
            raise ValueError(f"unknown keypoint names {unknown}")
        for name, value, allowed in (("norm", self.norm, NORMS),
                                     ("heatmap", self.heatmap, HEATMAP_ACTIVATIONS),
                                     ("variant", self.variant, VARIANTS),
                                     ("stem", self.stem, STEMS)):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
        if self.input_size != 2 * self.map_size:
            raise ValueError("input_size must be twice map_size (one stride-2 convolution)")
        if self.map_size % (2 ** (self.hourglass_level + 1)):
            raise ValueError(f"map_size {self.map_size} is not divisible by 2^(level+1)")
        if not isinstance(self.separable, bool):
            raise ValueError(f"separable must be true or false, got {self.separable!r}")
        if not isinstance(self.head_convs, int) or self.head_convs < 0:
            raise ValueError(f"head_convs must be an integer >= 0, got {self.head_convs!r}")
        if self.features % 4:
            raise ValueError(f"features must be a multiple of 4 (the stem uses F/4 and F/2), got {self.features}")
        if self.stages < 1:
            raise ValueError("stages must be >= 1")
        if not isinstance(self.handedness_head, bool):
            raise ValueError(f"handedness_head must be true or false, got {self.handedness_head!r}")
        if self.handedness_head:
            missing = [n for n in PALM_JOINTS + HANDEDNESS_JOINTS if n not in self.keypoint_names]
            if missing:
                raise ValueError(f"handedness_head needs the joints {missing}, which these keypoints lack: "
                                 "pass handedness_head=False")

    @property
    def num_joints(self) -> int:
        return len(self.keypoint_names)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["keypoint_names"] = list(self.keypoint_names)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SRNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}")
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict) -> "SRNetConfig":
        """The config stored in a model file (checkpoint payload or ONNX metadata). Fields a
        file predates take the value that matches its weights, not today's default: a file
        written before the handedness head existed has none (STORED_BEFORE_FIELD_EXISTED)."""
        return cls.from_dict({**STORED_BEFORE_FIELD_EXISTED, **d})

    @classmethod
    def from_json(cls, s: str) -> "SRNetConfig":
        """A stored config (ONNX metadata) from its JSON: see from_stored."""
        return cls.from_stored(json.loads(s))

    def replace(self, **changes) -> "SRNetConfig":
        return SRNetConfig.from_dict({**self.to_dict(), **changes})
