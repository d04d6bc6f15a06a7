"""Fit the handedness head's 13 parameters on a trained model's joints, keeping every other
weight: logistic regression on training-distribution crops (seeds 90001/90002, apart from
the test set's). Used once for the shipped model, whose head was added after its joints
were trained; a training run learns the head with the rest (SRNetLoss).

    python -m hand_pose_ros.training.fit_handedness SRC.pt DST.pt cuda BATCHES BATCH_SIZE
"""
import json
import sys
import time

import torch

from ..data.synthetic.scene import SyntheticConfig, training_batch
from ..model import SRNet, SRNetConfig, save_checkpoint
from ..model.checkpoint import read_checkpoint


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 5:
        raise SystemExit("usage: python -m hand_pose_ros.training.fit_handedness SRC.pt DST.pt DEVICE BATCHES BATCH_SIZE")
    src, dst, device, batches, size = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    return fit(src, dst, device, batches, size)


def fit(src, dst, device, batches, size) -> dict:
    payload = read_checkpoint(src, "cpu", False)
    config = SRNetConfig.from_stored(payload["config"])
    model = SRNet(config)
    state = {k: v for k, v in payload["state_dict"].items() if not k.startswith("handedness.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or not all(k.startswith("handedness.") for k in missing):
        raise ValueError(f"{src}: weights do not match its config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.to(device).eval()

    def features(seed, batches, size):
        g = torch.Generator(device=device)
        g.manual_seed(seed)
        xs, ys = [], []
        for _ in range(batches):
            # crops as the model takes them (a fast model's are 64 px, not the default 128)
            crops, _, info = training_batch(size, g, SyntheticConfig(), device, half_cube_mm=config.half_cube_mm,
                                            out_size=config.input_size)
            with torch.no_grad():
                uvd = model(crops)["uvd"]
            xs.append(model.handedness.offsets(uvd))
            ys.append(info["is_left"].float())
        return torch.cat(xs), torch.cat(ys)

    start = time.time()
    x_train, y_train = features(90_001, batches, size)
    x_val, y_val = features(90_002, 1, size)
    head = model.handedness.classifier
    opt = torch.optim.LBFGS(head.parameters(), max_iter=300, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure():
        opt.zero_grad()
        loss = loss_fn(head(x_train).squeeze(-1), y_train) + 1e-4 * head.weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        acc = lambda x, y: float(((head(x).squeeze(-1) > 0).float() == y).float().mean())  # noqa: E731
        result = {"train_frames": len(y_train), "val_frames": len(y_val), "train_acc": acc(x_train, y_train),
                  "val_acc": acc(x_val, y_val), "rule_thumb_sum_val_acc": float((((x_val[:, :4].sum(1)) < 0).float() == y_val).float().mean()),
                  "weights": head.weight.flatten().tolist(), "bias": float(head.bias), "seconds": time.time() - start}
    model.cpu()
    extra = {k: v for k, v in payload.items() if k not in ("format", "format_version", "config", "state_dict")}
    extra["handedness_fit"] = {k: v for k, v in result.items() if k != "weights"}
    save_checkpoint(dst, model, config, **extra)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
