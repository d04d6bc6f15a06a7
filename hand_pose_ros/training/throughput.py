"""`hand-pose train --benchmark-steps N`: training images/s with on-the-fly data, and how
much of a step the data side takes.

Three timed loops of N steps each (after a warm-up), on the configured device, batch,
AMP and model, with the real training step (augmentation, forward, loss with map targets,
backward, AdamW):
  data:     only produce batches (synthetic: the GPU generator);
  compute:  only train steps, on one batch produced beforehand;
  combined: the real loop, a new batch each step.
data_share = data time / combined time: the fraction of a training step spent making data.
The loops are synchronised at their ends only (CUDA), so asynchronous overlap counts as it
does in training. Under torchrun every rank runs the loops; images/s are global.
"""
from __future__ import annotations

import time

import torch

from .config import TrainConfig
from .distributed import DistContext, barrier
from .trainer import Trainer, device_name


def measure_throughput(config: TrainConfig, steps: int, ctx: DistContext | None = None,
                       warmup: int | None = None) -> dict:
    if steps < 1:
        raise ValueError(f"--benchmark-steps must be >= 1, got {steps}")
    warmup = max(2, steps // 5) if warmup is None else warmup
    # The benchmark needs no validation data: keep the fixed set as small as allowed.
    config = config.updated({"val_frames": config.batch_size, "epochs": 1,
                             "steps_per_epoch": max(config.steps_per_epoch, 3 * (steps + warmup))},
                            "benchmark")
    trainer = Trainer(config, ctx=ctx, write_files=False)
    device, ctx = trainer.device, trainer.ctx
    stream = trainer.data.train.batches(0, 0)

    def synchronise():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        barrier(ctx)

    def timed(loop, count) -> float:
        synchronise()
        start = time.perf_counter()
        loop(count)
        synchronise()
        return time.perf_counter() - start

    def data_only(count):
        for _ in range(count):
            next(stream)

    fixed = next(stream)

    def compute_only(count):
        for _ in range(count):
            trainer.train_step(fixed)

    def combined(count):
        for _ in range(count):
            trainer.train_step(next(stream))

    for loop in (data_only, compute_only, combined):
        loop(warmup)
    data_s = timed(data_only, steps)
    compute_s = timed(compute_only, steps)
    combined_s = timed(combined, steps)
    images = steps * trainer.global_batch
    return {
        "device": device_name(device),
        "world_size": ctx.world_size,
        "dataset": config.dataset,
        "variant": trainer.model_config.variant,
        "amp": trainer.amp_mode,
        "compile": config.compile,
        "batch_size": config.batch_size,
        "global_batch": trainer.global_batch,
        "steps": steps,
        "warmup_steps": warmup,
        "data_ms_per_step": 1000 * data_s / steps,
        "compute_ms_per_step": 1000 * compute_s / steps,
        "combined_ms_per_step": 1000 * combined_s / steps,
        "data_images_per_s": images / data_s,
        "compute_images_per_s": images / compute_s,
        "images_per_s": images / combined_s,
        "data_share": data_s / combined_s,
    }

