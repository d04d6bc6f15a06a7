"""Draw a hand skeleton on matplotlib axes in the project's finger colours (keypoints.py).
Shared by `hand-pose show`'s label grids and its estimate grids (`--model`)."""
from __future__ import annotations

import numpy as np

from .. import keypoints


def draw_skeleton(axes, points_uv, names, linewidth: float = 1.5, point_size: float = 12,
                  colour=None, outline: bool = False, linestyle: str = "-") -> None:
    """Bones (keypoints.edges) coloured by finger, then the keypoints on top.

    points_uv: [J, 2] pixel positions of `names`. colour: one colour for everything instead
    of the finger colours (e.g. labels beside an estimate). outline: a thin black edge
    around the bones, so they stay visible on a bright hand."""
    from matplotlib import patheffects

    points_uv = np.asarray(points_uv, dtype=np.float64)
    names = tuple(names)
    if points_uv.shape != (len(names), 2):
        raise ValueError(f"points_uv must be [{len(names)}, 2] for {len(names)} names, got {points_uv.shape}")
    effects = ([patheffects.Stroke(linewidth=linewidth + 1.5, foreground="black"), patheffects.Normal()]
               if outline else None)
    for a, b in keypoints.edges(names):
        axes.plot(points_uv[[a, b], 0], points_uv[[a, b], 1], color=colour or keypoints.colour_of(names[b]),
                  linewidth=linewidth, linestyle=linestyle, path_effects=effects, solid_capstyle="round")
    colours = [colour or keypoints.colour_of(n) for n in names]
    axes.scatter(points_uv[:, 0], points_uv[:, 1], c=colours, s=point_size, edgecolors="white" if not outline
                 else "black", linewidths=0.5, zorder=3)
