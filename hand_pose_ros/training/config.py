"""The training configuration: dataclasses filled from a YAML file, then flags, then `--set`.

Unknown keys are errors (a typo must never silently train with a default). The resolved
config is written next to the run (out/config.yaml) and stored inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..model.config import SRNetConfig, preset_fields

DATASETS = ("synthetic", "nyu", "icvl", "msra", "hands2017")
# Datasets whose frames say which hand they show (synthetic: info["is_left"]). On the others
# the model is built without a handedness head: it could never learn, and would report noise.
DATASETS_WITH_HANDEDNESS = ("synthetic",)
AMP_MODES = ("off", "bf16", "fp16")
SCHEDULES = ("step", "time")
MSRA_SUBJECTS = 9  # P0..P8, leave-one-subject-out folds
# Model fields the training config may set; the joints and cube size come from the dataset.
MODEL_FIELDS_FROM_DATASET = ("keypoint_names", "half_cube_mm")


@dataclass
class OptimConfig:
    lr: float = 1e-3                   # AdamW (srnet.md, release defaults)
    weight_decay: float = 0.0
    # "step": StepLR, the lr times lr_gamma every lr_step_epochs epochs (None: every
    # lr_step_fraction of the epochs; 0.3 = the release's 15 of 50, so a shorter schedule
    # keeps its shape). "time" (needs time_budget_min): the same staircase over wall time,
    # the lr times lr_gamma each time another lr_step_fraction of the budget is used, so a
    # run whose speed is not known beforehand still finishes its schedule in its budget.
    schedule: str = "step"
    lr_step_epochs: int | None = None
    lr_step_fraction: float = 0.3
    lr_gamma: float = 0.2
    grad_clip: float | None = None     # max gradient norm; None = no clipping

    def step_epochs(self, epochs: int) -> int:
        if self.lr_step_epochs:
            return self.lr_step_epochs
        return max(1, round(self.lr_step_fraction * epochs))


@dataclass
class LossConfig:
    # Total = sum over stages of alpha * L_uvd + (1 - alpha) * (lambda_h * L_H + lambda_d * L_D).
    # None: the variant's default (model.losses.default_loss_weights: 0.5 for the full model,
    # 1 for representation_unsupervised / direct_regression, 0 for coordinate_unsupervised).
    alpha: float | None = None
    lambda_h: float = 1.0
    lambda_d: float = 0.01
    # + handedness_weight * BCE(handedness logit, is left). None: model.losses.HANDEDNESS_WEIGHT
    # (0.05, why there). Frames without a handedness label add nothing.
    handedness_weight: float | None = None


@dataclass
class AugmentConfig:
    enabled: bool = True
    rotation_deg: float = 30.0         # uniform +-, about the crop centre
    scale_min: float = 0.8             # uniform, plane coordinates and centred depth
    scale_max: float = 1.2
    shift_mm: float = 5.0              # centre shift, uniform +- per axis


@dataclass
class TrainConfig:
    dataset: str = "synthetic"
    root: str | None = None            # dataset folder (needed by all but synthetic)
    fold: str | None = None            # msra: "0".."8" (test subject) or "all"
    # Model selection data. "held_out": the last val_frames frames of the training split
    # (excluded from training); synthetic: a fixed set generated once with its own seed.
    # Any other value names a reader split (e.g. "test", the reference's habit).
    val_split: str = "held_out"
    val_frames: int = 512
    out: str = "runs/train"
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    amp: str = "off"                   # off | bf16 | fp16 (autocast, CUDA only)
    compile: bool = False              # torch.compile the model (CUDA)
    deterministic: bool = False        # torch.use_deterministic_algorithms (slower on CUDA)
    epochs: int = 50
    steps_per_epoch: int = 1000        # synthetic only: batches per epoch
    batch_size: int = 32               # per process; global batch = batch_size * world size
    num_workers: int = 4               # DataLoader workers for disk datasets
    time_budget_min: float | None = None  # stop cleanly (save + validate) after this wall time
    log_every: int = 20                # steps between TensorBoard scalar writes
    model: dict = field(default_factory=dict)  # SRNetConfig fields (features, variant, ...)
    synthetic: dict = field(default_factory=dict)  # SyntheticConfig fields (camera, noise, ...)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if "preset" in self.model:  # model: {preset: fast, ...}: the preset's fields, then the rest
            rest = {k: v for k, v in self.model.items() if k != "preset"}
            self.model = {**preset_fields(self.model["preset"]), **rest}
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r} is not one of {DATASETS}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r} is not one of {AMP_MODES}")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device={self.device!r}: use auto, cpu, cuda or cuda:N")
        for name in ("epochs", "steps_per_epoch", "batch_size", "val_frames", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.num_workers < 0:
            raise ValueError(f"num_workers={self.num_workers} must be >= 0")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise ValueError(f"time_budget_min={self.time_budget_min} must be > 0")
        if self.fold is not None:
            if self.dataset != "msra":
                raise ValueError(f"fold={self.fold!r} only applies to dataset msra, not {self.dataset!r}")
            if self.fold != "all" and self.fold not in {str(k) for k in range(MSRA_SUBJECTS)}:
                raise ValueError(f"fold={self.fold!r}: use 0..{MSRA_SUBJECTS - 1} or 'all'")
        if self.loss.alpha is not None and not 0.0 <= self.loss.alpha <= 1.0:
            raise ValueError(f"loss.alpha={self.loss.alpha} must be in [0, 1]")
        if self.loss.lambda_h < 0 or self.loss.lambda_d < 0:
            raise ValueError("loss.lambda_h and loss.lambda_d must be >= 0")
        if self.loss.handedness_weight is not None and not self.loss.handedness_weight >= 0:
            raise ValueError(f"loss.handedness_weight={self.loss.handedness_weight} must be >= 0")
        if self.optim.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule={self.optim.schedule!r} is not one of {SCHEDULES}")
        if self.optim.schedule == "time" and self.time_budget_min is None:
            raise ValueError("optim.schedule='time' needs time_budget_min (--time-budget-min)")
        if not 0 < self.optim.lr_step_fraction <= 1:
            raise ValueError(f"optim.lr_step_fraction={self.optim.lr_step_fraction} must be in (0, 1]")
        if self.optim.lr <= 0 or not 0 < self.optim.lr_gamma <= 1:
            raise ValueError(f"optim.lr={self.optim.lr} must be > 0 and optim.lr_gamma in (0, 1]")
        if not 0 < self.augment.scale_min <= self.augment.scale_max:
            raise ValueError("augment: need 0 < scale_min <= scale_max")
        bad = sorted(set(self.model) & set(MODEL_FIELDS_FROM_DATASET))
        if bad:
            raise ValueError(f"model.{bad[0]} comes from the dataset; do not set it in the training config")
        SRNetConfig.from_dict(dict(self.model))  # raises on unknown fields / bad values
        if self.model.get("handedness_head") and self.dataset not in DATASETS_WITH_HANDEDNESS:
            raise ValueError(f"model.handedness_head: {self.dataset} frames have no handedness labels, "
                             "so the head could never learn; leave it out (it is off for this dataset)")
        if self.synthetic:
            if self.dataset != "synthetic":
                raise ValueError(f"synthetic settings given but dataset is {self.dataset!r}")
            self.synthetic_config()

    def synthetic_config(self):
        """The generator's SyntheticConfig (defaults + the `synthetic` overrides)."""
        from ..data.synthetic import SyntheticConfig
        return SyntheticConfig.from_dict(dict(self.synthetic))

    def model_config(self, keypoint_names, half_cube_mm: float) -> SRNetConfig:
        """The SRNetConfig for this run: the model overrides plus the dataset's joints and cube
        (and no handedness head where the dataset has no handedness labels)."""
        labelled = self.dataset in DATASETS_WITH_HANDEDNESS
        return SRNetConfig.from_dict({"handedness_head": labelled, **self.model,
                                      "keypoint_names": tuple(keypoint_names),
                                      "half_cube_mm": float(half_cube_mm)})

    @property
    def variant(self) -> str:
        return self.model.get("variant", SRNetConfig().variant)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "TrainConfig":
        return _build(cls, d, where)

    def updated(self, changes: dict, where: str = "override") -> "TrainConfig":
        """A copy with a nested dict of changes merged in (validated like a file)."""
        return TrainConfig.from_dict(_merge(self.to_dict(), changes), where)

    def with_set(self, assignments) -> "TrainConfig":
        """Apply `--set a.b=value` strings; values are parsed as YAML (1e-3, true, null, [1, 2])."""
        changes: dict = {}
        for text in assignments:
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set {text!r}: expected key=value, e.g. optim.lr=2e-4")
            node = changes
            *parents, leaf = key.strip().split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(value) if value.strip() else None
        return self.updated(changes, "--set")

    def save(self, path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_config(path=None) -> TrainConfig:
    """Defaults, overlaid with a YAML file when given."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return TrainConfig.from_dict(data, str(path))


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls, data: dict, where: str):
    """Construct dataclass `cls` from a dict, recursing into nested dataclasses and
    checking every key and value type."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}: {cls.__name__}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _coerce(tp, value, where: str):
    """Check `value` against annotation `tp` (bool, int, float, str, dict, Optional, dataclass)."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    args = typing.get_args(tp)
    if type(None) in args:  # X | None
        if value is None:
            return None
        (tp,) = [a for a in args if a is not type(None)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '2e-4' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # e.g. fold: 3
    elif tp is dict or typing.get_origin(tp) is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ValueError(f"{where}={value!r} must be of type {getattr(tp, '__name__', tp)}")
