"""The SRNet training loop (srnet.md "Loss and training").

One Trainer runs one training job on one process; under torchrun each rank runs one and
DistributedDataParallel averages their gradients. Per step: augment on the device (own
seeded generator), forward under optional autocast, SRNetLoss (map targets encoded on the
device), backward, AdamW. Per epoch: StepLR, validation as mean 3D error in mm, last.pt,
best.pt when the validation error improves, scalars (TensorBoard + scalars.jsonl).

Exact resume: last.pt holds the model, optimiser, scheduler, AMP scaler, epoch and step
counters, and every random state of every rank (torch CPU/CUDA, numpy, python, the data
and augmentation generators). A run stopped by its time budget stops in the middle of an
epoch and resumes at the same step, so 1 + 1 epochs give the same weights as 2.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data import augment as augmentation
from ..model import SRNet, SRNetConfig, SRNetLoss, save_checkpoint
from ..model.checkpoint import ModelFileError, read_checkpoint
from . import distributed
from .config import TrainConfig
from .data import batch_errors_mm, build_data, dataset_joints
from .scalars import ScalarLog

# Seed offsets, so each consumer of randomness has its own stream (and each rank its own).
_SEED_SYNTHETIC_TRAIN = 1
_SEED_AUGMENT = 2
_SEED_VALIDATION = 3
_RANK_STRIDE = 1_000_003
_BUDGET_CHECK_EVERY_DDP = 10


def derived_seed(seed: int, purpose: int, rank: int = 0) -> int:
    return (seed * 7919 + purpose * 104_729 + rank * _RANK_STRIDE) % (2 ** 63)


def log(message: str) -> None:
    """Progress on stderr, from rank 0 only (torchrun sets RANK)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"[train] {message}", file=sys.stderr, flush=True)


class Trainer:
    def __init__(self, config: TrainConfig, resume: str | None = None, init: str | None = None,
                 ctx: distributed.DistContext | None = None, write_files: bool = True):
        self.wall_start = time.perf_counter()
        self.config = config
        self.ctx = ctx or distributed.setup(config.device)
        self.device = self.ctx.device
        self.write_files = write_files and self.ctx.is_main  # only rank 0 writes
        self.out = Path(config.out)
        resume_payload = _load_resume(resume) if resume else None

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        np.random.seed(config.seed % 2 ** 32)
        random.seed(config.seed)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: pick the fastest kernels

        # Checked before any data is read: a wrong checkpoint fails at once.
        self.model_config = config.model_config(*dataset_joints(config.dataset)) \
            .replace(extra={"dataset": config.dataset})
        init_payload = _load_for_init(init) if init else None
        for path, payload in (("--resume " + str(resume), resume_payload),
                              ("--init " + str(init), init_payload)):
            if payload is not None:
                _check_compatible(payload, self.model_config, config.dataset, path)
        self.data = build_data(config, self.ctx, seeds={
            "train": derived_seed(config.seed, _SEED_SYNTHETIC_TRAIN, self.ctx.rank),
            "validation": derived_seed(config.seed, _SEED_VALIDATION)})

        self.model = SRNet(self.model_config).to(self.device)
        if init_payload is not None:
            _load_init_weights(self.model, init_payload["state_dict"], init)
        if self.model_config.norm == "batch" and self.ctx.distributed:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.criterion = SRNetLoss.for_config(self.model_config, **_loss_overrides(config))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.optim.step_epochs(config.epochs),
            gamma=config.optim.lr_gamma)
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.amp_mode = config.amp if self.amp_dtype is not None else "off"  # what really runs
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.augment_config = augmentation.AugmentConfig(
            rotation_deg=config.augment.rotation_deg,
            scale_range=(config.augment.scale_min, config.augment.scale_max),
            shift_mm=config.augment.shift_mm) if config.augment.enabled else None
        self.augment_generator = torch.Generator(device=self.device)
        self.augment_generator.manual_seed(derived_seed(config.seed, _SEED_AUGMENT, self.ctx.rank))

        # Progress counters (restored on resume).
        self.epoch = 0               # epochs completed
        self.step_in_epoch = 0       # steps done inside the current epoch
        self.global_step = 0
        self.best_val_error_mm = math.inf
        self.best_epoch = None
        self.best_step = None
        self.history: list[dict] = []  # one row per validation
        self.budget_used_before = 0.0  # wall time of the earlier runs this one resumes
        if resume_payload is not None:
            self._restore(resume_payload, resume)

        self.train_model = self.model
        if self.ctx.distributed:
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            self.train_model = torch.compile(self.train_model)
        self.writer = None
        if self.write_files:
            self.out.mkdir(parents=True, exist_ok=True)
            config.save(self.out / "config.yaml")
            self.writer = ScalarLog(self.out, start_step=self.global_step)
        log(f"rank {self.ctx.rank}/{self.ctx.world_size} on {self.device}: {config.dataset}, "
            f"{self.data.train.steps_per_epoch} steps/epoch x {config.batch_size} "
            f"(global batch {self.global_batch}), {self.data.validation.frames} validation "
            f"frames, variant {self.model_config.variant}, loss weights "
            f"alpha={self.criterion.alpha} lambda_h={self.criterion.lambda_h} "
            f"lambda_d={self.criterion.lambda_d}, amp {self.amp_mode}")

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.ctx.world_size

    # ------------------------------------------------------------------------- training

    def train_step(self, batch) -> dict:
        """One optimiser step on one batch. Returns the loss parts (detached, on device)."""
        crops, uvd = batch.crops, batch.uvd_norm
        if self.augment_config is not None:
            crops, uvd = augmentation.augment_batch(
                crops, uvd, generator=self.augment_generator, config=self.augment_config,
                half_cube_mm=batch.half_cube_mm, box=batch.box)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            outputs = self.train_model(crops)
        loss, parts = self.criterion(outputs, uvd, crops, is_left=batch.is_left)  # FP32 inside
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return parts

    def fit(self) -> dict:
        config, ctx = self.config, self.ctx
        steps_per_epoch = self.data.train.steps_per_epoch
        budget_s = config.time_budget_min * 60 if config.time_budget_min else None
        # A check syncs the ranks (a broadcast), so under DDP check every few steps only.
        budget_check_every = _BUDGET_CHECK_EVERY_DDP if ctx.distributed else 1
        self.stopped_by_budget = False
        train_seconds, train_images = 0.0, 0
        last_eval_seconds = None
        self.model.train()
        while self.epoch < config.epochs and not self.stopped_by_budget:
            epoch_start = time.perf_counter()
            epoch_steps = 0
            running: dict[str, torch.Tensor] = {}   # loss parts summed since the last log
            running_steps = 0
            bar = tqdm(total=steps_per_epoch, initial=self.step_in_epoch, file=sys.stderr,
                       desc=f"epoch {self.epoch + 1}/{config.epochs}", disable=not ctx.is_main,
                       dynamic_ncols=True, leave=False,
                       mininterval=0.5 if sys.stderr.isatty() else 30.0)  # logs stay short
            for batch in self.data.train.batches(self.epoch, self.step_in_epoch):
                parts = self.train_step(batch)
                for key, value in parts.items():
                    running[key] = running.get(key, 0) + value
                running_steps += 1
                self.step_in_epoch += 1
                self.global_step += 1
                epoch_steps += 1
                bar.update(1)
                if self.global_step % config.log_every == 0 or self.step_in_epoch == steps_per_epoch:
                    self._log_steps(running, running_steps, epoch_steps, epoch_start, bar)
                    running, running_steps = {}, 0
                if self.step_in_epoch >= steps_per_epoch:
                    break
                if budget_s is not None and self.global_step % budget_check_every == 0:
                    # Fraction of the usable budget spent (rank 0's clock decides for all).
                    reserve = _eval_reserve_s(last_eval_seconds, train_images, train_seconds,
                                              self.data.validation.frames)
                    progress = distributed.from_main(
                        self._budget_used_s() / max(budget_s - reserve, 1e-9), ctx)
                    if progress >= 1:
                        self.stopped_by_budget = True
                        break
                    if config.optim.schedule == "time":
                        self._set_time_lr(progress)
            bar.close()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - epoch_start
            train_seconds += seconds
            train_images += epoch_steps * self.global_batch
            if self.step_in_epoch >= steps_per_epoch:
                self.epoch += 1
                self.step_in_epoch = 0
                if config.optim.schedule == "step":
                    self.scheduler.step()

            eval_start = time.perf_counter()
            val_error = self.validate()
            self._record(val_error, epoch_steps * self.global_batch / max(seconds, 1e-9))
            self.save()
            last_eval_seconds = time.perf_counter() - eval_start
            if budget_s is not None and not self.stopped_by_budget and self.epoch < config.epochs:
                # No time left for another step + validation: stop here, already saved.
                reserve = _eval_reserve_s(last_eval_seconds, train_images, train_seconds,
                                          self.data.validation.frames)
                self.stopped_by_budget = distributed.from_main(
                    self._budget_used_s() / max(budget_s - reserve, 1e-9), ctx) >= 1
            if self.stopped_by_budget:
                log(f"time budget of {config.time_budget_min} min reached at step {self.global_step}"
                    f" (epoch {self.epoch + 1}, step {self.step_in_epoch}); saved, stopping")
        return self._finish(train_seconds, train_images)

    def _budget_used_s(self) -> float:
        """Wall time of this run so far, plus that of the runs it resumes."""
        return self.budget_used_before + time.perf_counter() - self.wall_start

    def _set_time_lr(self, progress: float) -> None:
        """The step schedule over wall time: lr * gamma^(number of fractions used)."""
        optim = self.config.optim
        lr = optim.lr * optim.lr_gamma ** math.floor(progress / optim.lr_step_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _log_steps(self, running, running_steps, steps, epoch_start, bar) -> None:
        values = {k: float(v) / running_steps for k, v in running.items()}  # host sync per log
        if not math.isfinite(values.get("total", 0.0)):
            raise FloatingPointError(
                f"training loss is {values['total']} at step {self.global_step} (lr "
                f"{self.optimizer.param_groups[0]['lr']:g}); lower the lr or disable --amp fp16")
        images_per_s = steps * self.global_batch / max(time.perf_counter() - epoch_start, 1e-9)
        bar.set_postfix(loss=f"{values.get('total', 0):.4g}", img_s=f"{images_per_s:.0f}")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add(f"loss/{key}", value, self.global_step)
            self.writer.add("lr", self.optimizer.param_groups[0]["lr"], self.global_step)
            self.writer.add("throughput/images_per_s", images_per_s, self.global_step)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean 3D joint error (mm) over the validation set, every rank scoring its shard.
        Also sets self.val_handedness_acc: the share of labelled frames whose handedness
        (P(left) > 0.5) is right (None: no labels, or no handedness head)."""
        self.model.eval()
        # [sum of per-frame errors, frames, frames with the right hand, frames with a hand label]
        total = torch.zeros(4, dtype=torch.float64)
        for batch in self.data.validation.batches():
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                outputs = self.model(batch.crops)
            errors = batch_errors_mm(outputs["uvd"].float(), batch)
            total[:2] += torch.tensor([errors.sum(), errors.size], dtype=torch.float64)
            if batch.is_left is not None and "handedness" in outputs:
                said_left = outputs["handedness"].float().cpu().numpy() > 0.5
                total[2:] += torch.tensor([(said_left == batch.is_left).sum(), batch.is_left.size],
                                          dtype=torch.float64)
        self.model.train()
        total = distributed.all_reduce_sum(total.to(self.device), self.ctx).cpu()
        self.val_handedness_acc = float(total[2] / total[3]) if total[3] > 0 else None
        return float(total[0] / total[1]) if total[1] > 0 else math.nan

    def _record(self, val_error: float, images_per_s: float) -> None:
        improved = val_error < self.best_val_error_mm
        if improved:
            self.best_val_error_mm, self.best_epoch, self.best_step = val_error, self.epoch, self.global_step
        handedness_acc = getattr(self, "val_handedness_acc", None)
        self.history.append({"epoch": self.epoch, "step": self.global_step,
                             "val_error_mm": val_error, "val_handedness_acc": handedness_acc,
                             "images_per_s": images_per_s,
                             "lr": self.optimizer.param_groups[0]["lr"]})
        self._improved = improved
        if self.writer is not None:
            self.writer.add("val/mean_error_mm", val_error, self.global_step)
            self.writer.add("val/best_error_mm", self.best_val_error_mm, self.global_step)
            if handedness_acc is not None:
                self.writer.add("val/handedness_acc", handedness_acc, self.global_step)
            self.writer.add("throughput/epoch_images_per_s", images_per_s, self.global_step)
            self.writer.flush()
        hand_text = "" if handedness_acc is None else f", handedness {100 * handedness_acc:.1f}% right"
        log(f"epoch {self.epoch}/{self.config.epochs} step {self.global_step}: val {val_error:.2f} mm"
            f" (best {self.best_val_error_mm:.2f}){hand_text}, {images_per_s:.0f} images/s")

    # ------------------------------------------------------------------------- checkpoints

    def save(self) -> None:
        """last.pt every time (all ranks' random states gathered to rank 0), best.pt when the
        validation error improved (weights + metrics only)."""
        rng = distributed.gather_objects(self._rng_state(), self.ctx)
        if not self.write_files:
            return
        metrics = {"train_config": self.config.to_dict(), "epoch": self.epoch,
                   "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                   "val_error_mm": self.history[-1]["val_error_mm"] if self.history else math.nan,
                   "best_val_error_mm": _finite_or_none(self.best_val_error_mm),
                   "best_epoch": self.best_epoch, "best_step": self.best_step}
        save_checkpoint(self.out / "last.pt", self.model, self.model_config, **metrics,
                        optimizer=self.optimizer.state_dict(),
                        scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                        rng=rng, world_size=self.ctx.world_size, history=self.history,
                        budget_used_s=self._budget_used_s())
        if getattr(self, "_improved", False):
            save_checkpoint(self.out / "best.pt", self.model, self.model_config, **metrics)

    def _rng_state(self) -> dict:
        np_state = np.random.get_state()
        state = {"torch": torch.get_rng_state(),
                 "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                           "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                           "cached_gaussian": float(np_state[4])},
                 "python": _python_state_to_list(random.getstate()),
                 "augment": self.augment_generator.get_state(),
                 "data": self.data.train.state_dict()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32),
                             state["numpy"]["pos"], state["numpy"]["has_gauss"],
                             state["numpy"]["cached_gaussian"]))
        random.setstate(_python_state_from_list(state["python"]))
        self.augment_generator.set_state(state["augment"])
        self.data.train.load_state_dict(state["data"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def _restore(self, payload: dict, path) -> None:
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.epoch, self.step_in_epoch = int(payload["epoch"]), int(payload["step_in_epoch"])
        self.global_step = int(payload["global_step"])
        best = payload["best_val_error_mm"]
        self.best_val_error_mm = math.inf if best is None else float(best)
        self.best_epoch, self.best_step = payload["best_epoch"], payload["best_step"]
        self.history = list(payload["history"])
        # A time schedule spans resumes; otherwise the budget is a per-invocation wall limit.
        if self.config.optim.schedule == "time":
            self.budget_used_before = float(payload.get("budget_used_s", 0.0))
        if self.step_in_epoch >= self.data.train.steps_per_epoch:
            raise ValueError(f"{path}: saved at step {self.step_in_epoch} of an epoch, but this "
                             f"run has {self.data.train.steps_per_epoch} steps per epoch; resume "
                             "with the same data settings")
        if payload["world_size"] == self.ctx.world_size:
            self._set_rng_state(payload["rng"][self.ctx.rank])
        else:
            log(f"warning: {path} was written by {payload['world_size']} processes, this run has "
                f"{self.ctx.world_size}: random streams restart from the seed (not exact)")
            # New streams per rank, offset by the step so they do not replay the first ones.
            offset = self.config.seed + self.global_step
            self.augment_generator.manual_seed(derived_seed(offset, _SEED_AUGMENT, self.ctx.rank))
            self.data.train.reseed(derived_seed(offset, _SEED_SYNTHETIC_TRAIN, self.ctx.rank))
        # The schedule may have been changed (e.g. more epochs): keep the configured shape.
        self.scheduler.step_size = self.config.optim.step_epochs(self.config.epochs)
        log(f"resumed from {path}: epoch {self.epoch}, step {self.global_step}, best "
            f"{self.best_val_error_mm:.2f} mm")

    # ------------------------------------------------------------------------- summary

    def _finish(self, train_seconds: float, train_images: int) -> dict:
        wall = time.perf_counter() - self.wall_start
        summary = {
            "dataset": self.config.dataset,
            "fold": self.config.fold,
            "variant": self.model_config.variant,
            "loss_weights": {"alpha": self.criterion.alpha, "lambda_h": self.criterion.lambda_h,
                             "lambda_d": self.criterion.lambda_d,
                             "handedness_weight": self.criterion.handedness_weight},
            "best_val_error_mm": _finite_or_none(self.best_val_error_mm),
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "final_val_error_mm": self.history[-1]["val_error_mm"] if self.history else None,
            "final_val_handedness_acc": self.history[-1].get("val_handedness_acc") if self.history else None,
            "validation_frames": self.data.validation.frames,
            "epochs_completed": self.epoch,
            "epochs": self.config.epochs,
            "steps": self.global_step,
            "global_batch": self.global_batch,
            "images_per_s": train_images / train_seconds if train_seconds > 0 else None,
            "train_seconds": train_seconds,
            "wall_time_s": wall,
            "stopped_by_time_budget": self.stopped_by_budget,
            "device": device_name(self.device),
            "world_size": self.ctx.world_size,
            "amp": self.amp_mode,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "out": str(self.out),
            "checkpoints": {"last": str(self.out / "last.pt"), "best": str(self.out / "best.pt")},
            "val_curve": [{"step": h["step"], "epoch": h["epoch"], "val_error_mm": h["val_error_mm"]}
                          for h in self.history],
        }
        if self.write_files:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            if self.writer is not None:
                self.writer.close()
        return summary


# ----------------------------------------------------------------------------- helpers

def _amp_dtype(mode: str, device: torch.device):
    if mode == "off":
        return None
    if device.type != "cuda":
        log(f"--amp {mode} needs CUDA; training in FP32 on {device}")
        return None
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _loss_overrides(config: TrainConfig) -> dict:
    weights = {"lambda_h": config.loss.lambda_h, "lambda_d": config.loss.lambda_d}
    if config.loss.alpha is not None:
        weights["alpha"] = config.loss.alpha
    if config.loss.handedness_weight is not None:
        weights["handedness_weight"] = config.loss.handedness_weight
    return weights


def _load_init_weights(model, state_dict: dict, where) -> None:
    """--init: the checkpoint's weights. The handedness head may differ: a checkpoint without
    one leaves this run's head at its random initialisation; a checkpoint's head is dropped
    when this run has none (a dataset without handedness labels). Every other weight must match."""
    own = set(model.state_dict())
    is_head = lambda name: name.startswith("handedness.")  # noqa: E731
    weights = {name: value for name, value in state_dict.items() if name in own or not is_head(name)}
    untrained_head = any(is_head(name) for name in own - set(weights))
    model.load_state_dict(weights, strict=not untrained_head)
    if untrained_head:
        unexpected = sorted(set(weights) - own)
        absent = sorted(name for name in own - set(weights) if not is_head(name))
        if unexpected or absent:
            raise ValueError(f"--init {where}: weights do not match this model (missing {absent[:5]}, "
                             f"unexpected {unexpected[:5]})")
    note = {(True, False): "; it has no handedness head, so the head starts untrained",
            (False, True): "; its handedness head is dropped (this run has none)"}
    log(f"initialised weights from {where}"
        + note.get((untrained_head, len(weights) < len(state_dict)), ""))


def _finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


def _eval_reserve_s(last_eval_s, images, seconds, val_frames) -> float:
    """Seconds to keep free at the end of a time budget for validation + saving."""
    if last_eval_s is not None:
        return 1.5 * last_eval_s + 2.0
    rate = images / seconds if seconds > 0 else 200.0
    return 10.0 + 3.0 * val_frames / max(rate, 1.0)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _python_state_to_list(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(state) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def resume_path(path) -> Path:
    """A run folder -> its last.pt; a file -> itself."""
    path = Path(path)
    return path / "last.pt" if path.is_dir() else path


def _load_resume(path) -> dict:
    file = resume_path(path)
    payload = read_checkpoint(file)
    if "optimizer" not in payload or "rng" not in payload:
        raise ModelFileError(f"{file}: holds no optimiser/random state (a best.pt or an exported "
                             "model?); resume from the run's last.pt, or use --init to start "
                             "from its weights")
    return payload


def _load_for_init(path) -> dict:
    return read_checkpoint(resume_path(path))


def _check_compatible(payload: dict, model_config, dataset: str, where: str) -> None:
    """The checkpoint's joints (and architecture, for resume) must match this run."""
    saved = payload["config"]
    names = tuple(saved.get("keypoint_names", ()))
    if names != tuple(model_config.keypoint_names):
        raise ValueError(
            f"{where}: the checkpoint predicts {len(names)} joints "
            f"({saved.get('extra', {}).get('dataset', 'unknown dataset')}) but dataset "
            f"{dataset!r} has {model_config.num_joints}; train a new model for this dataset")
    for key in ("features", "stages", "hourglass_level", "norm", "heatmap", "variant",
                "input_size", "map_size"):
        if saved.get(key) != getattr(model_config, key):
            raise ValueError(f"{where}: checkpoint model {key}={saved.get(key)!r} differs from "
                             f"this run's {getattr(model_config, key)!r}")
    # A resume must continue the same network; --init may add or drop the handedness head.
    saved_head = SRNetConfig.from_stored(saved).handedness_head
    if saved_head != model_config.handedness_head and where.startswith("--resume"):
        raise ValueError(f"{where}: checkpoint model handedness_head={saved_head} differs from this "
                         f"run's {model_config.handedness_head}")
