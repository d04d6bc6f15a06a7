"""ESTIMATES, not measurements: what each model should reach on Jetson Orin modules with
TensorRT, from its MACs and public figures (no Jetson was available to this project).

    python -m hand_pose_ros.inference.jetson_estimate [--json]

Method:
- Peak: NVIDIA's published sparse INT8 TOPS of each module's GPU, halved for dense
  math; FP16 tensor-core math is half the INT8 rate on Ampere.
- Achieved share of the peak at batch 1: anchored on one public measurement of a small CNN.
  YOLOv8n (8.7 GFLOP at 640 x 640) runs in 3.49 ms with TensorRT 10.3 INT8 on an Orin Nano
  8 GB in MAXN SUPER (hokwangchoi.com, "YOLOv8 on Jetson Orin Nano", 2026). That is
  2.5 TOPS of the module's 33.5 dense: 7.4%. Our models are assumed to do as well.
- A floor for small graphs: each of the ~150 kernels costs ~5 us to launch and schedule
  on an Orin GPU, so nothing runs in under ~0.75 ms (an assumption, from CUDA launch costs).
The real figure may differ by 2x either way: run `hand-pose bench --backend tensorrt` on the
module to know.
"""
from __future__ import annotations

import argparse
import json

# name -> dense INT8 TOPS of the GPU (published sparse figure / 2), SMs, clock (GHz).
ORIN_MODULES = {
    "Orin Nano 8GB (MAXN SUPER, 1.02 GHz)": {"int8_dense_tops": 67 / 2, "sms": 8},
    "Orin Nano 8GB (15 W, 625 MHz)": {"int8_dense_tops": 40 / 2, "sms": 8},
    "AGX Orin 64GB (MAXN, 1.3 GHz)": {"int8_dense_tops": 170 / 2, "sms": 16},
}
ACHIEVED_SHARE = 2.5 / 33.5      # YOLOv8n INT8 on Orin Nano Super, batch 1 (see above)
LAUNCH_FLOOR_MS = 0.75
FP16_RATE = 0.5                  # FP16 tensor math / INT8 tensor math


def estimate_ms(gmac: float, int8_dense_tops: float, precision: str) -> float:
    ops = 2 * gmac * 1e9
    rate = int8_dense_tops * 1e12 * ACHIEVED_SHARE * (1.0 if precision == "int8" else FP16_RATE)
    return max(LAUNCH_FLOOR_MS, ops / rate * 1e3)


def estimates(models: dict[str, float]) -> list[dict]:
    """models: name -> GMAC per frame. One row per (model, module, precision)."""
    rows = []
    for model, gmac in models.items():
        for module, facts in ORIN_MODULES.items():
            for precision in ("fp16", "int8"):
                ms = estimate_ms(gmac, facts["int8_dense_tops"], precision)
                rows.append({"model": model, "gmac": gmac, "module": module, "precision": precision,
                             "estimated_ms": round(ms, 2), "estimated_fps": round(1e3 / ms),
                             "kind": "ESTIMATE (not measured)"})
    return rows


def shipped_models() -> dict[str, float]:
    from ..model.config import SRNetConfig, preset_fields
    from ..model.summary import describe
    return {preset: describe(SRNetConfig(**preset_fields(preset)))["gmacs_per_frame"] for preset in ("full", "fast")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ESTIMATED TensorRT latency of the models on Jetson Orin")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = estimates(shipped_models())
    if args.json:
        print(json.dumps(rows))
        return 0
    print("ESTIMATES from GMAC and public figures, not measurements (method: module docstring)")
    print(f"{'model':6s} {'GMAC':>6s} {'module':38s} {'prec':5s} {'ms':>6s} {'fps':>6s}")
    for r in rows:
        print(f"{r['model']:6s} {r['gmac']:6.2f} {r['module']:38s} {r['precision']:5s} "
              f"{r['estimated_ms']:6.2f} {r['estimated_fps']:6d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
