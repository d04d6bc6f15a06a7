"""SRNet training loss (srnet.md "Loss and training"), for every ablation variant.

Per stage s:
    L_uvd = mean over batch and joints of sum over (u, v, d) of (pred - target)^2
    L_H   = mean over batch and joints of sum over pixels of (H - H*)^2
    L_D   = mean over batch and joints of sum over pixels of (D - D*)^2
total = sum over stages of alpha * L_uvd + (1 - alpha) * (lambda_h * L_H + lambda_d * L_D)
        + handedness_weight * L_hand,
L_hand = binary cross-entropy of the handedness logit against "is a left hand", mean over the
frames whose handedness is known (none known, or a model without the head: no term).
The map targets H*, D* are encoded here from the joint labels and the input crops
(targets.make_targets), so a trainer only passes (outputs, target uvd, depth crops).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SRNetConfig
from .targets import make_targets

# Which terms each variant trains (srnet.md "Ablation variants"):
# - two_stage, one_stage: coordinates and representation both supervised (the paper's full
#   model; the release itself uses alpha = 1, i.e. coordinates only).
# - representation_unsupervised: only the coordinates (alpha = 1).
# - coordinate_unsupervised: only the maps (alpha = 0). We read "decoder outside the graph"
#   as: the decoded coordinates get no loss, so no gradient passes through the decoders;
#   the network still decodes (u, v, d) from its maps for evaluation and deployment.
# - direct_regression: no maps exist, coordinates only (alpha = 1).
_VARIANT_ALPHA = {
    "two_stage": 0.5,
    "one_stage": 0.5,
    "representation_unsupervised": 1.0,
    "coordinate_unsupervised": 0.0,
    "direct_regression": 1.0,
}
LAMBDA_H = 1.0    # release
LAMBDA_D = 0.01   # release
# Ours. At initialisation L_hand = ln 2 = 0.69, so the term starts at 0.035: below the
# coordinate loss of an untrained model (~0.1-0.3 per stage), and its gradient fades once
# frames are classified confidently, while L_uvd keeps its pull. At the shipped model's
# error (~10 mm: L_uvd ~ 3e-3 per stage) a 99%-correct classifier (L_hand ~ 0.03) adds
# ~1.5e-3, the same order, not more: handedness trains without outweighing the joints.
HANDEDNESS_WEIGHT = 0.05


def default_loss_weights(config: SRNetConfig) -> dict:
    """{'alpha', 'lambda_h', 'lambda_d', 'handedness_weight'} for config.variant: the variant
    decides which loss terms apply. The alpha = 0.5 of the full model is our choice (both
    terms supervised, as in the paper); override it with SRNetLoss.for_config(config, alpha=...)."""
    return {"alpha": _VARIANT_ALPHA[config.variant], "lambda_h": LAMBDA_H, "lambda_d": LAMBDA_D,
            "handedness_weight": HANDEDNESS_WEIGHT}


class SRNetLoss(nn.Module):
    """loss(outputs, target_uvd [B,J,3], depth [B,1,m,m], is_left [B], handedness_known [B])
    -> (total, parts).

    outputs: SRNet.forward's dict. depth: the input crops, needed to encode the map targets
    (only when alpha < 1). is_left: bool labels (None: no frame has one, e.g. NYU, ICVL,
    MSRA, HANDS2017); handedness_known: which of them are real labels (None: all).
    parts: detached scalars 'stage{k}/uvd', 'stage{k}/heatmap', 'stage{k}/depth',
    'handedness' (unweighted; each only when it counts) and 'total'.
    Losses are computed in FP32 (safe under autocast)."""

    def __init__(self, alpha: float = 1.0, lambda_h: float = LAMBDA_H, lambda_d: float = LAMBDA_D,
                 handedness_weight: float = HANDEDNESS_WEIGHT):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must be in [0, 1]")
        if lambda_h < 0 or lambda_d < 0:
            raise ValueError(f"lambda_h={lambda_h}, lambda_d={lambda_d} must be >= 0")
        if not handedness_weight >= 0:
            raise ValueError(f"handedness_weight={handedness_weight} must be >= 0")
        self.alpha, self.lambda_h, self.lambda_d = float(alpha), float(lambda_h), float(lambda_d)
        self.handedness_weight = float(handedness_weight)

    @classmethod
    def for_config(cls, config: SRNetConfig, **overrides) -> "SRNetLoss":
        """The variant's default weights (default_loss_weights), with overrides applied."""
        weights = default_loss_weights(config)
        unknown = sorted(set(overrides) - set(weights))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; known: {sorted(weights)}")
        return cls(**{**weights, **overrides})

    @property
    def uses_maps(self) -> bool:
        return self.alpha < 1.0

    def forward(self, outputs: dict, target_uvd: Tensor, depth: Tensor | None = None,
                is_left: Tensor | None = None, handedness_known: Tensor | None = None):
        stages = outputs["stages"]
        target_uvd = target_uvd.float()
        if target_uvd.shape != outputs["uvd"].shape:
            raise ValueError(f"target_uvd shape {tuple(target_uvd.shape)} does not match the "
                             f"prediction {tuple(outputs['uvd'].shape)}")
        targets = None
        if self.uses_maps:
            if "heatmaps" not in stages[0]:
                raise ValueError(f"alpha={self.alpha} < 1 needs heatmaps and depth maps, but "
                                 "this model has none (direct_regression): use alpha=1")
            if depth is None:
                raise ValueError(f"alpha={self.alpha} < 1: pass the input depth crops to "
                                 "encode the map targets")
            with torch.no_grad():
                targets = make_targets(target_uvd, depth.float(), stages[0]["heatmaps"].shape[-1])

        total = target_uvd.new_zeros(())
        parts = {}
        for k, stage in enumerate(stages, start=1):
            uvd_loss = ((stage["uvd"].float() - target_uvd) ** 2).sum(-1).mean()
            parts[f"stage{k}/uvd"] = uvd_loss.detach()
            if self.alpha > 0:
                total = total + self.alpha * uvd_loss
            if targets is not None:
                heatmap_loss = _map_loss(stage["heatmaps"], targets["heatmaps"])
                depth_loss = _map_loss(stage["depth_maps"], targets["depth_maps"])
                parts[f"stage{k}/heatmap"] = heatmap_loss.detach()
                parts[f"stage{k}/depth"] = depth_loss.detach()
                total = total + (1 - self.alpha) * (self.lambda_h * heatmap_loss
                                                    + self.lambda_d * depth_loss)
        handedness_loss = self._handedness_loss(outputs, is_left, handedness_known)
        if handedness_loss is not None:
            parts["handedness"] = handedness_loss.detach()
            total = total + self.handedness_weight * handedness_loss
        parts["total"] = total.detach()
        return total, parts

    def _handedness_loss(self, outputs: dict, is_left, known) -> Tensor | None:
        """Mean BCE over the labelled frames; None when nothing is labelled or the model has
        no handedness head (a batch without labels adds nothing, not a zero that averages in)."""
        if is_left is None or self.handedness_weight == 0 or "handedness_logit" not in outputs:
            return None
        logit = outputs["handedness_logit"].float()
        target = torch.as_tensor(is_left, device=logit.device).reshape(-1)
        if target.shape != logit.shape:
            raise ValueError(f"is_left has {target.numel()} labels for a batch of {logit.numel()}")
        target = target.to(logit.dtype)
        if known is None:
            return F.binary_cross_entropy_with_logits(logit, target)
        known = torch.as_tensor(known, device=logit.device).reshape(-1).to(logit.dtype)
        if known.shape != logit.shape:
            raise ValueError(f"handedness_known has {known.numel()} entries for a batch of {logit.numel()}")
        per_frame = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
        # Every frame unlabelled: a zero that still depends on the logit (DDP needs every
        # parameter in the graph), but carries no gradient.
        return (per_frame * known).sum() / known.sum().clamp(min=1.0)


def _map_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Sum over pixels of the squared error, mean over batch and joints. [B,J,n,n] -> []."""
    return ((prediction.float() - target) ** 2).sum(dim=(-2, -1)).mean()
