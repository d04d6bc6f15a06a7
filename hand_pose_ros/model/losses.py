"""SRNet training loss (srnet.md "Loss and training"), for every ablation variant.

Per stage s:
    L_uvd = mean over batch and joints of sum over (u, v, d) of (pred - target)^2
    L_H   = mean over batch and joints of sum over pixels of (H - H*)^2
    L_D   = mean over batch and joints of sum over pixels of (D - D*)^2
total = sum over stages of alpha * L_uvd + (1 - alpha) * (lambda_h * L_H + lambda_d * L_D).
The map targets H*, D* are encoded here from the joint labels and the input crops
(targets.make_targets), so a trainer only passes (outputs, target uvd, depth crops).
"""
from __future__ import annotations

import torch
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


def default_loss_weights(config: SRNetConfig) -> dict:
    """{'alpha', 'lambda_h', 'lambda_d'} for config.variant: the variant decides which loss
    terms apply. The alpha = 0.5 of the full model is our choice (both terms supervised, as
    in the paper); override it with SRNetLoss.for_config(config, alpha=...)."""
    return {"alpha": _VARIANT_ALPHA[config.variant], "lambda_h": LAMBDA_H, "lambda_d": LAMBDA_D}


class SRNetLoss(nn.Module):
    """loss(outputs, target_uvd [B,J,3], depth [B,1,m,m]) -> (total, parts).

    outputs: SRNet.forward's dict. depth: the input crops, needed to encode the map targets
    (only when alpha < 1). parts: detached scalars 'stage{k}/uvd', 'stage{k}/heatmap',
    'stage{k}/depth' (unweighted; map terms only when they count) and 'total'.
    Losses are computed in FP32 (safe under autocast)."""

    def __init__(self, alpha: float = 1.0, lambda_h: float = LAMBDA_H, lambda_d: float = LAMBDA_D):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must be in [0, 1]")
        if lambda_h < 0 or lambda_d < 0:
            raise ValueError(f"lambda_h={lambda_h}, lambda_d={lambda_d} must be >= 0")
        self.alpha, self.lambda_h, self.lambda_d = float(alpha), float(lambda_h), float(lambda_d)

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

    def forward(self, outputs: dict, target_uvd: Tensor, depth: Tensor | None = None):
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
        parts["total"] = total.detach()
        return total, parts


def _map_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Sum over pixels of the squared error, mean over batch and joints. [B,J,n,n] -> []."""
    return ((prediction.float() - target) ** 2).sum(dim=(-2, -1)).mean()
