"""fit_handedness: fits only the head and keeps every other weight."""
import torch

from hand_pose_ros.model import SRNet, SRNetConfig, save_checkpoint
from hand_pose_ros.model.checkpoint import load_model
from hand_pose_ros.training.fit_handedness import main


def test_fit_changes_only_the_handedness_head(tmp_path):
    torch.manual_seed(0)
    config = SRNetConfig(features=16, hourglass_level=1, stages=1)
    model = SRNet(config)
    src = save_checkpoint(tmp_path / "src.pt", model, config, epoch=3)
    result = main([str(src), str(tmp_path / "dst.pt"), "cpu", "1", "6"])
    fitted, _, payload = load_model(tmp_path / "dst.pt")
    before, after = model.state_dict(), fitted.state_dict()
    for name in before:
        assert torch.equal(before[name], after[name]) == (not name.startswith("handedness.")), name
    assert fitted.handedness.classifier.weight.abs().sum() > 0
    assert result["train_frames"] == 6 and 0.0 <= result["val_acc"] <= 1.0
    assert payload["epoch"] == 3 and payload["handedness_fit"]["train_frames"] == 6
