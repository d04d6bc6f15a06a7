"""MSRA leave-one-subject-out: `hand-pose train --dataset msra --fold all`.

Nine runs in OUT/fold_<k>/ (test subject P<k>, training on the other eight, validation
held out of the training subjects), run one after another. After each, its best.pt
predicts every frame of P<k> with the same crops as training (ground-truth-based centre;
MSRA frames are pre-segmented, so that is the centre of mass of the hand). The nine
prediction sets are concatenated P0 -> P8, as the protocol says, into
OUT/msra_loso_predictions.txt (community result format: 21 x "u v d" per line) with the
matching ground truth in OUT/msra_loso_groundtruth.txt, and scored with the evaluation
metrics into OUT/summary.json. A --time-budget-min is split equally between the folds.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import keypoints
from ..camera import dataset_intrinsics
from ..data.crop import CropBatch, recover_uvd
from ..evaluation import score, write_result_file
from ..model import load_model
from . import distributed
from .config import MSRA_SUBJECTS, TrainConfig
from .data import CropDataset, open_reader
from .trainer import Trainer, log


def train_all_folds(config: TrainConfig, ctx: distributed.DistContext | None = None) -> dict:
    if config.dataset != "msra":
        raise ValueError(f"--fold all is the MSRA protocol; dataset is {config.dataset!r}")
    out = Path(config.out)
    budget = config.time_budget_min / MSRA_SUBJECTS if config.time_budget_min else None
    fold_summaries, predictions, ground_truth = [], [], []
    for fold in range(MSRA_SUBJECTS):
        log(f"MSRA fold {fold} (test subject P{fold})")
        fold_config = config.updated({"fold": str(fold), "out": str(out / f"fold_{fold}"),
                                      "time_budget_min": budget}, f"fold {fold}")
        trainer = Trainer(fold_config, ctx=ctx)
        summary = trainer.fit()
        pred, gt = predict_split(fold_config, Path(fold_config.out) / "best.pt", "test", trainer.device)
        predictions.append(pred)
        ground_truth.append(gt)
        summary["test_frames"] = int(len(gt))
        summary["test_mean_error_mm"] = _mean_error(gt, pred)
        fold_summaries.append(summary)
    pred_all, gt_all = np.concatenate(predictions), np.concatenate(ground_truth)
    names = keypoints.order("msra")
    scores = score(gt_all, pred_all, dataset_intrinsics("msra", for_eval=True), names)
    result = {
        "dataset": "msra", "protocol": "leave-one-subject-out, P0 -> P8",
        "mean_error_mm": scores["mean_error_mm"], "frames": scores["frames"],
        "max_error_success_20mm": scores["max_error_success"].get("20"),
        "folds": [{"fold": s["fold"], "best_val_error_mm": s["best_val_error_mm"],
                   "test_mean_error_mm": s["test_mean_error_mm"], "test_frames": s["test_frames"],
                   "images_per_s": s["images_per_s"], "wall_time_s": s["wall_time_s"]}
                  for s in fold_summaries],
        "wall_time_s": sum(s["wall_time_s"] for s in fold_summaries),
        "predictions": str(out / "msra_loso_predictions.txt"),
        "ground_truth": str(out / "msra_loso_groundtruth.txt"),
        "scores": scores,
    }
    if ctx is None or ctx.is_main:
        write_result_file(out / "msra_loso_predictions.txt", pred_all)
        write_result_file(out / "msra_loso_groundtruth.txt", gt_all)
        (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


@torch.no_grad()
def predict_split(config: TrainConfig, checkpoint, split: str, device) -> tuple[np.ndarray, np.ndarray]:
    """Run a checkpoint over every frame of a split, in order: (pred uvd, gt uvd) [N, J, 3]
    in pixels and mm, cropped as in training."""
    model, model_config, _ = load_model(checkpoint, map_location=device)
    reader = open_reader(config.dataset, config.root, split, config.fold)
    dataset = CropDataset(reader, np.arange(len(reader)), model_config.input_size,
                          model_config.keypoint_names)
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.num_workers)
    predictions, ground_truth = [], []
    for item in loader:
        uvd_norm = model(item["crops"].to(device))["uvd"].double().cpu().numpy()
        crop = CropBatch(image=None, com_uvd=item["com_uvd"].numpy(), box=item["box"].numpy(),
                         half_cube_mm=item["half_cube_mm"].numpy())
        predictions.append(recover_uvd(uvd_norm, crop))
        ground_truth.append(item["gt_uvd"].numpy())
    return np.concatenate(predictions), np.concatenate(ground_truth)


def _mean_error(gt, pred) -> float:
    from ..evaluation import joint_errors_mm
    return float(joint_errors_mm(gt, pred, dataset_intrinsics("msra", for_eval=True)).mean())
