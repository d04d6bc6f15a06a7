"""Checkpoint save / load round trip and every error case (hand_pose_ros.model.checkpoint)."""
import zipfile

import numpy as np
import pytest
import torch

from hand_pose_ros import keypoints
from hand_pose_ros.model import ModelFileError, SRNet, SRNetConfig, load_model, save_checkpoint
from hand_pose_ros.model.checkpoint import read_checkpoint

SMALL = dict(features=16, input_size=64, map_size=32, hourglass_level=3)


def small_model(**changes):
    config = SRNetConfig(**{**SMALL, **changes})
    torch.manual_seed(0)
    return SRNet(config), config


def test_round_trip_restores_weights_config_and_extras(tmp_path):
    model, config = small_model(keypoint_names=keypoints.order("nyu"), handedness_head=False, half_cube_mm=125.0,
                                extra={"dataset": "nyu"})
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=15, gamma=0.2)
    model(torch.randn(2, 1, 64, 64)).get("uvd").sum().backward()
    optimiser.step()
    scheduler.step()
    rng = torch.get_rng_state()
    path = save_checkpoint(tmp_path / "runs" / "best.pt", model, config, epoch=7,
                           optimizer=optimiser.state_dict(), scheduler=scheduler.state_dict(),
                           rng=rng, metrics={"val_mean_mm": 9.5})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temp file left behind

    loaded, loaded_config, payload = load_model(path)
    assert loaded_config == config and loaded_config.extra == {"dataset": "nyu"}
    assert not loaded.training
    assert payload["epoch"] == 7 and payload["metrics"] == {"val_mean_mm": 9.5}
    assert torch.equal(payload["rng"], rng)
    assert payload["scheduler"]["last_epoch"] == 1
    restored = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    restored.load_state_dict(payload["optimizer"])
    crops = torch.randn(2, 1, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(crops)["uvd"], loaded(crops)["uvd"])


def test_overwrite_is_atomic_and_reserved_keys_rejected(tmp_path):
    model, config = small_model()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, config, epoch=1)
    save_checkpoint(path, model, config, epoch=2)
    assert read_checkpoint(path)["epoch"] == 2
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, model, config, state_dict={})
    assert read_checkpoint(path)["epoch"] == 2


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="nope.pt: no such checkpoint file"):
        load_model(tmp_path / "nope.pt")


def test_truncated_file(tmp_path):
    model, config = small_model()
    path = save_checkpoint(tmp_path / "model.pt", model, config)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated.pt: truncated, corrupt"):
        load_model(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.pt"):
        load_model(empty)


@pytest.mark.parametrize("seed", range(32))
def test_corrupt_file(tmp_path, seed):
    # random bytes once made the legacy unpickler raise IndexError in CI: try many, reproducibly
    path = tmp_path / "garbage.pt"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match="garbage.pt: .*corrupt"):
        load_model(path)


def test_corrupt_member_inside_a_zip(tmp_path):
    model, config = small_model()
    path = tmp_path / "damaged.pt"
    save_checkpoint(path, model, config)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    pickle_name = next(name for name in members if name.endswith("data.pkl"))
    members[pickle_name] = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ModelFileError, match="damaged.pt: .*corrupt"):
        load_model(path)


def test_not_a_hand_pose_checkpoint(tmp_path):
    model, _ = small_model()
    bare = tmp_path / "bare_state_dict.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(ModelFileError, match="bare_state_dict.pt: not a hand_pose_ros checkpoint"):
        load_model(bare)
    foreign = tmp_path / "list.pt"
    torch.save([1, 2, 3], foreign)
    with pytest.raises(ModelFileError, match="not a hand_pose_ros checkpoint"):
        load_model(foreign)


def test_config_does_not_match_weights(tmp_path):
    model, config = small_model()  # 21 joints
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, model, config)
    payload = torch.load(path, weights_only=True)
    payload["config"]["keypoint_names"] = list(keypoints.order("nyu"))  # claims 14 joints
    payload["config"]["handedness_head"] = False                        # (which have no handedness head)
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match=r"mismatch.pt: stored weights do not match its model config \(J=14"):
        load_model(path)

    payload["config"] = {**config.to_dict(), "norm": "group"}
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="mismatch.pt: invalid model config"):
        load_model(path)


def test_untrusted_objects_need_trusted_flag(tmp_path):
    model, config = small_model()
    path = save_checkpoint(tmp_path / "custom.pt", model, config, note=Note("made here"))
    with pytest.raises(ModelFileError, match="custom.pt: .*trusted=True"):
        load_model(path)
    _, _, payload = load_model(path, trusted=True)
    assert payload["note"].text == "made here"


class Note:
    """An arbitrary picklable object: outside torch's weights_only safe set."""

    def __init__(self, text):
        self.text = text
