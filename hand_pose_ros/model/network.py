"""SRNet: the two-stage Spatial Representation Network (srnet.md).

    depth crop [B,1,128,128]
      -> LowLevelCNN                      [B,F,64,64]
      -> Stage 1: 1x1 conv, Hourglass, PlaneRegression -> heatmaps H [B,J,64,64]
                                       DepthRegression -> depth maps D [B,J,64,64]
      -> Stage 2: input concat(H, D, label image L) [B,2J+1,64,64], same layout
      -> decoders (inside the graph): H -> (u, v), (H, D, L) -> d, H -> confidence
      -> handedness head (config.handedness_head) on the last stage's hourglass features:
         P(left hand) [B]

Only torch ops with static shapes and no Python control flow on tensor values: the model
exports to ONNX (opset 17, dynamic batch) and TensorRT with the decoders folded in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import HANDEDNESS_JOINTS, PALM_JOINTS, SRNetConfig
from .decoders import decode_confidence, decode_depth, decode_plane, grid_coordinates
from .targets import label_image

# Variants whose stages regress maps (all but direct_regression).
MAP_VARIANTS = ("two_stage", "one_stage", "coordinate_unsupervised", "representation_unsupervised")


def stage_count(config: SRNetConfig) -> int:
    """Stages actually built: the one_stage and direct_regression variants have one (the
    direct-regression head has no maps to feed a second stage); others use config.stages."""
    return 1 if config.variant in ("one_stage", "direct_regression") else config.stages


def norm_layer(config: SRNetConfig, channels: int) -> nn.Module:
    if config.norm == "instance":  # per-image statistics at test time too
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.BatchNorm2d(channels)


class ConvNormReLU(nn.Sequential):
    """k x k conv (no bias: the norm that follows removes it) + norm + ReLU."""

    def __init__(self, config: SRNetConfig, c_in: int, c_out: int, kernel: int = 3, stride: int = 1):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
                         norm_layer(config, c_out), nn.ReLU(inplace=True))


class SeparableConvNormReLU(nn.Sequential):
    """Depthwise 3x3 + norm + ReLU, then pointwise 1x1 c_in -> c_out + norm + ReLU: about
    9x fewer MACs than a full 3x3 conv when c_out is large."""

    def __init__(self, config: SRNetConfig, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                         norm_layer(config, c_in), nn.ReLU(inplace=True),
                         nn.Conv2d(c_in, c_out, 1, bias=False), norm_layer(config, c_out), nn.ReLU(inplace=True))


def conv3x3_block(config: SRNetConfig, c_in: int, c_out: int) -> nn.Module:
    """A 3x3 conv + norm + ReLU at map resolution, separable when config.separable."""
    if config.separable:
        return SeparableConvNormReLU(config, c_in, c_out)
    return ConvNormReLU(config, c_in, c_out)


class LowLevelCNN(nn.Module):
    """[B,1,m,m] -> [B,F,m/2,m/2]. Channels 32, 64, 128, then a stride-2 128 -> 128 conv for
    F = 128 (srnet.md); they scale with F (F/4, F/2, F, F) so reduced test models stay small.
    config.stem = "strided" takes the stride first (1 -> F/4 at stride 2) and runs F/4 -> F/2
    -> F at map resolution."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        f = config.features
        if config.stem == "strided":
            self.layers = nn.Sequential(
                ConvNormReLU(config, 1, f // 4, stride=2),  # m -> n = m/2
                ConvNormReLU(config, f // 4, f // 2),
                conv3x3_block(config, f // 2, f),
            )
        else:
            self.layers = nn.Sequential(
                ConvNormReLU(config, 1, f // 4),
                ConvNormReLU(config, f // 4, f // 2),
                ConvNormReLU(config, f // 2, f),
                ConvNormReLU(config, f, f, stride=2),  # m -> n = m/2
            )

    def forward(self, depth: Tensor) -> Tensor:
        return self.layers(depth)


class Residual(nn.Module):
    """Pre-activation bottleneck: norm, ReLU, 1x1 F->F/2, norm, ReLU, 3x3 F/2->F/2, norm,
    ReLU, 1x1 F/2->F, plus identity. Shape unchanged [B,F,h,w]."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        f, half = config.features, config.features // 2
        self.block = nn.Sequential(
            norm_layer(config, f), nn.ReLU(inplace=True),
            nn.Conv2d(f, half, 1, bias=False),
            norm_layer(config, half), nn.ReLU(inplace=True),
            # depthwise when config.separable (the 1x1s on either side mix the channels)
            nn.Conv2d(half, half, 3, padding=1, groups=half if config.separable else 1, bias=False),
            norm_layer(config, half), nn.ReLU(inplace=True),
            nn.Conv2d(half, f, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        # The first ReLU is in-place on the norm's output, never on x itself.
        return x + self.block(x)


class Hourglass(nn.Module):
    """Hourglass(L): x = Res(in); h = Res(Hourglass(L-1)(maxpool2(x))), a Res at the
    bottom (L = 0); out = x + nearest-upsample(h). Level L pools L+1 times (4: 64 -> 2)."""

    def __init__(self, config: SRNetConfig, level: int):
        super().__init__()
        self.skip = Residual(config)
        self.inner = Hourglass(config, level - 1) if level > 0 else Residual(config)
        self.after = Residual(config)

    def forward(self, x: Tensor) -> Tensor:
        x = self.skip(x)                                 # [B,F,h,w]
        h = self.after(self.inner(F.max_pool2d(x, 2)))   # [B,F,h/2,w/2]
        return x + F.interpolate(h, scale_factor=2.0, mode="nearest")


def regression_head(config: SRNetConfig, final_bias: bool = True) -> nn.Sequential:
    """config.head_convs x (3x3 conv F->F + norm + ReLU; the paper has 3), then 3x3 conv
    F->J. [B,F,n,n] -> [B,J,n,n]."""
    f = config.features
    return nn.Sequential(*(conv3x3_block(config, f, f) for _ in range(config.head_convs)),
                         nn.Conv2d(f, config.num_joints, 3, padding=1, bias=final_bias))


class PlaneRegression(nn.Module):
    """Heatmaps: softmax over all n*n pixels of (w_j * logits_j) with a learnable per-joint
    temperature w_j (init 1), or relu + normalise to sum 1. [B,F,n,n] -> [B,J,n,n]."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        self.softmax = config.heatmap == "softmax"
        self.eps = config.decoder_eps
        # A per-channel bias is a no-op under a softmax over pixels: leave it out.
        self.head = regression_head(config, final_bias=not self.softmax)
        if self.softmax:
            self.temperature = nn.Parameter(torch.ones(config.num_joints))

    def forward(self, features: Tensor) -> Tensor:
        logits = self.head(features).float()  # FP32 for the normalisation over 4096 pixels
        if self.softmax:
            logits = logits * self.temperature.view(1, -1, 1, 1)
            flat = torch.softmax(logits.flatten(2), dim=-1)   # [B,J,n*n]
            return flat.view_as(logits)                       # [B,J,n,n]
        positive = F.relu(logits)
        return positive / (positive.sum(dim=(-2, -1), keepdim=True) + self.eps)


class DepthRegression(nn.Module):
    """Local depth-offset maps D_j (normalised depth units). [B,F,n,n] -> [B,J,n,n]."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        self.head = regression_head(config)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(features)


class Stage(nn.Module):
    """1x1 conv (in -> F), hourglass, then the plane and depth heads.
    [B,c_in,n,n] -> heatmaps [B,J,n,n], depth maps [B,J,n,n]."""

    def __init__(self, config: SRNetConfig, in_channels: int):
        super().__init__()
        self.entry = nn.Conv2d(in_channels, config.features, 1)
        self.hourglass = Hourglass(config, config.hourglass_level)
        self.plane = PlaneRegression(config)
        self.depth = DepthRegression(config)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> heatmaps, depth maps and the hourglass features [B,F,n,n] they came from."""
        features = self.hourglass(self.entry(x))  # [B,F,n,n]
        return self.plane(features), self.depth(features), features


class DirectRegressionStage(nn.Module):
    """Ablation: the heads replaced by global average pooling + FC regression of J*3.
    [B,F,n,n] -> uvd [B,J,3]."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        f = config.features
        self.entry = nn.Conv2d(f, f, 1)
        self.hourglass = Hourglass(config, config.hourglass_level)
        self.activation = nn.Sequential(norm_layer(config, f), nn.ReLU(inplace=True))
        self.fc = nn.Linear(f, config.num_joints * 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """-> uvd [B,J,3] and the hourglass features [B,F,n,n]."""
        hourglass = self.hourglass(self.entry(x))                   # [B,F,n,n]
        features = self.activation(hourglass)
        pooled = features.mean(dim=(-2, -1))                        # [B,F]
        return self.fc(pooled).unflatten(-1, (-1, 3)).float(), hourglass


class HandednessHead(nn.Module):
    """Which hand the crop shows, from the chirality of the predicted joints.

    A left hand is the mirror image of a right one: no rotation turns one into the other,
    but their joints differ only in which side of the palm plane things lie on. With the
    palm axes x = index MCP - pinky MCP (toward the thumb on a right hand), y = middle MCP
    - wrist and n = x cross y (palmar on a right hand, dorsal on a left one), the thumb
    and the curled fingers sit on the palmar side: their offsets along n, in hand lengths,
    are positive for a right hand and negative for a left one. A Linear(12, 1) on those 12
    offsets gives the logit of "left". The joints come from the graph's own uvd output
    (detached: handedness never pulls on the joints), in crop units made isotropic
    (u and v span 2 half-cubes, d one).

    Why not a classifier on the hourglass features: two H200 runs (an MLP on pooled
    features, then LayerNorm + linear) never left P = 0.5 (loss ln 2 throughout), since the
    joint task needs no chirality: a thumb is found by its shape, whichever side it is on.
    """

    def __init__(self, config: SRNetConfig):
        super().__init__()
        names = tuple(config.keypoint_names)     # SRNetConfig checks that the joints below are there
        self.register_buffer("palm_index", torch.tensor([names.index(n) for n in PALM_JOINTS]), persistent=False)
        self.register_buffer("joint_index", torch.tensor([names.index(n) for n in HANDEDNESS_JOINTS]),
                             persistent=False)
        self.register_buffer("axis_scale", torch.tensor([2.0, 2.0, 1.0]), persistent=False)
        self.classifier = nn.Linear(len(HANDEDNESS_JOINTS), 1)
        # Start undecided: P = 0.5, loss ln 2.
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def offsets(self, uvd: Tensor) -> Tensor:
        """[B,J,3] normalised uvd -> [B,12] signed offsets from the palm plane (hand lengths)."""
        p = uvd.detach().float() * self.axis_scale                          # isotropic crop units
        palm = p.index_select(1, self.palm_index)                           # [B,4,3]
        wrist, index_mcp, middle_mcp, pinky_mcp = palm.unbind(1)
        x = index_mcp - pinky_mcp
        y = middle_mcp - wrist
        # Cross product, norms and dot products spelled out: reductions over the last axis
        # export as opset-18 ops with an axes input that the exporter cannot bring to 17.
        n = torch.stack((x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1], x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2],
                         x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0]), dim=-1)
        n = n / (torch.sqrt(n[:, 0:1] ** 2 + n[:, 1:2] ** 2 + n[:, 2:3] ** 2) + 1e-6)
        length = torch.sqrt(y[:, 0:1] ** 2 + y[:, 1:2] ** 2 + y[:, 2:3] ** 2) + 1e-6   # [B,1]
        rel = p.index_select(1, self.joint_index) - wrist[:, None]           # [B,12,3]
        return (rel[..., 0] * n[:, 0:1] + rel[..., 1] * n[:, 1:2] + rel[..., 2] * n[:, 2:3]) / length

    def forward(self, uvd: Tensor) -> Tensor:
        weight = self.classifier.weight.float()
        return (self.offsets(uvd) @ weight.t() + self.classifier.bias.float()).squeeze(-1)  # [B] logit, FP32


class SRNet(nn.Module):
    """forward(depth [B,1,m,m]) -> {
        'uvd':        [B,J,3] final normalised (u, v, d) (u, v in map grid units),
        'confidence': [B,J] in [0, 1] (decoders.decode_confidence; 1 everywhere for the
                      direct_regression variant, which has no heatmap),
        'stages':     one dict per stage: 'uvd' [B,J,3], 'heatmaps' [B,J,n,n],
                      'depth_maps' [B,J,n,n] (no maps for direct_regression),
        and with config.handedness_head:
        'handedness':       [B] probability that the hand is a LEFT hand (sigmoid, FP32),
        'handedness_logit': [B] the logit it comes from (what the loss uses)}.
    Decoder outputs are FP32 even under autocast.

    config.variant (srnet.md ablations): two_stage = the full model (config.stages stages);
    one_stage = one stage; direct_regression = one hourglass stage with a pooled FC head;
    coordinate_unsupervised / representation_unsupervised build the full model and differ
    only in which loss terms train it (losses.default_loss_weights)."""

    def __init__(self, config: SRNetConfig):
        super().__init__()
        self.config = config
        self.low_level = LowLevelCNN(config)
        j = config.num_joints
        if config.variant == "direct_regression":
            self.stages = nn.ModuleList([DirectRegressionStage(config)])
        else:
            later = [Stage(config, 2 * j + 1) for _ in range(stage_count(config) - 1)]
            self.stages = nn.ModuleList([Stage(config, config.features), *later])
        self.handedness = HandednessHead(config) if config.handedness_head else None
        # Constant decoder grid, folded into an exported graph (not stored in checkpoints).
        self.register_buffer("grid", grid_coordinates(config.map_size), persistent=False)

    def forward(self, depth: Tensor) -> dict:
        label = label_image(depth)        # [B,1,n,n]
        x = self.low_level(depth)         # [B,F,n,n]
        if self.config.variant == "direct_regression":
            uvd, features = self.stages[0](x)  # [B,J,3], [B,F,n,n]
            confidence = torch.ones_like(uvd[..., 0])
            return self._with_handedness({"uvd": uvd, "confidence": confidence, "stages": [{"uvd": uvd}]})

        stage_outputs = []
        for stage in self.stages:
            heatmaps, depth_maps, features = stage(x)             # [B,J,n,n] x 2, [B,F,n,n]
            uv = decode_plane(heatmaps, self.grid)                # [B,J,2]
            d = decode_depth(heatmaps, depth_maps, label, self.config.decoder_eps)  # [B,J]
            uvd = torch.cat((uv, d.unsqueeze(-1)), dim=-1)        # [B,J,3]
            stage_outputs.append({"uvd": uvd, "heatmaps": heatmaps, "depth_maps": depth_maps})
            # Next stage input [B,2J+1,n,n], in the dtype the convolutions run in.
            x = torch.cat((heatmaps.to(depth_maps.dtype), depth_maps, label.to(depth_maps.dtype)), dim=1)
        final = stage_outputs[-1]
        confidence = decode_confidence(final["heatmaps"], final["uvd"][..., :2], self.grid)
        return self._with_handedness({"uvd": final["uvd"], "confidence": confidence, "stages": stage_outputs})

    def _with_handedness(self, out: dict) -> dict:
        if self.handedness is not None:
            logit = self.handedness(out["uvd"])           # [B] FP32
            out["handedness_logit"] = logit
            out["handedness"] = torch.sigmoid(logit)      # [B] P(left)
        return out
