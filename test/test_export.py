"""ONNX export: a clean, checked graph with the decoders inside, the model config as
metadata, static shapes except the batch, ONNX Runtime == PyTorch, FP16 without NaN."""
import contextlib
import io
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hand_pose_ros import cli  # noqa: E402
from hand_pose_ros.inference import export  # noqa: E402
from hand_pose_ros.inference.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from hand_pose_ros.inference.backends.torch_backend import TorchBackend  # noqa: E402
from hand_pose_ros.inference.model_file import (META_CONFIG, META_KEYPOINTS, META_SOURCE_SHA256,  # noqa: E402
                                                read_onnx_config, sha256_file)
from hand_pose_ros.inference.sample_inputs import realistic_crops  # noqa: E402
from hand_pose_ros.model import ModelFileError, SRNet, SRNetConfig, save_checkpoint  # noqa: E402

# Small and quick to export (one stage, hourglass level 1); the full architecture's graph is
# checked on conftest's random_onnx_model (F=16, two stages, level 4).
CONFIG = SRNetConfig(features=16, hourglass_level=1, stages=1,
                     keypoint_names=SRNetConfig().keypoint_names + ("palm_center",), half_cube_mm=125.0)
J = len(CONFIG.keypoint_names)   # 22: not the canonical 21, to prove J comes from the config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small random SRNet (J=22, to prove J comes from the config) saved as a checkpoint
    and exported through the real `hand-pose export` command."""
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(1)
    model = SRNet(CONFIG).eval()
    # A trained-looking handedness head: its output layer starts at zero (P = 0.5 for every
    # crop), which would make the handedness parity checks trivially pass.
    torch.nn.init.normal_(model.handedness.classifier.weight, std=0.5)
    checkpoint = save_checkpoint(folder / "tiny.pt", model, CONFIG, epoch=2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["export", str(checkpoint), "--onnx", str(folder / "tiny.onnx"), "--json"])
    assert code == 0
    report = json.loads(out.getvalue())  # exactly one JSON object on stdout
    return {"model": model, "checkpoint": checkpoint, "onnx": folder / "tiny.onnx", "report": report}


def test_export_report_and_checker(exported):
    report = exported["report"]
    assert report["onnx"] == str(exported["onnx"]) and report["joints"] == J and report["batch"] == "dynamic"
    assert report["sha256"] == sha256_file(exported["onnx"])
    assert report["parity"]["uvd_max_abs_diff"] <= export.PARITY_TOLERANCE
    proto = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(proto, full_check=True)
    assert next(o.version for o in proto.opset_import if o.domain == "") == 17
    assert proto.ir_version == 8  # the oldest IR for opset 17: readable by older runtimes


def test_metadata_round_trip(exported):
    config, metadata = read_onnx_config(exported["onnx"])
    assert config == CONFIG
    assert json.loads(metadata[META_KEYPOINTS]) == list(CONFIG.keypoint_names)
    assert json.loads(metadata[META_CONFIG])["half_cube_mm"] == 125.0
    assert metadata[META_SOURCE_SHA256] == sha256_file(exported["checkpoint"])


def test_graph_is_clean_and_static_except_batch(exported, random_onnx_model):
    full = onnx.load(str(random_onnx_model))  # the full two-stage, level-4 architecture
    assert export.shape_problems(full, batch=None) == []
    assert sum(node.op_type == "InstanceNormalization" for node in full.graph.node) == 82
    proto = onnx.load(str(exported["onnx"]))
    ops = {node.op_type for node in proto.graph.node} | {node.op_type for node in full.graph.node}
    # InstanceNorm as one node, the spatial softmax as one node, decoders in the graph.
    assert {"InstanceNormalization", "Softmax", "ReduceSum"} <= ops
    assert not ops & {"NonZero", "ArgMax", "Loop", "If", "TopK"}  # nothing data-dependent
    assert export.shape_problems(proto, batch=None) == []
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(proto.graph.input[0]) == ["batch", 1, 128, 128]
    assert [o.name for o in proto.graph.output] == ["uvd", "confidence", "handedness"]
    assert dims(proto.graph.output[0]) == ["batch", J, 3] and dims(proto.graph.output[1]) == ["batch", J]
    assert dims(proto.graph.output[2]) == ["batch"]
    assert [o.name for o in full.graph.output] == ["uvd", "confidence", "handedness"]


def test_metadata_says_whether_the_graph_has_a_handedness_output(exported, tmp_path):
    from hand_pose_ros.inference.model_file import META_FORMAT, ONNX_FORMAT, ONNX_FORMAT_HANDEDNESS

    proto = onnx.load(str(exported["onnx"]))
    metadata = {p.key: p for p in proto.metadata_props}
    assert metadata[META_FORMAT].value == ONNX_FORMAT_HANDEDNESS
    assert json.loads(metadata[META_CONFIG].value)["handedness_head"] is True
    # The format and the config disagree: refused, naming the file.
    metadata[META_FORMAT].value = ONNX_FORMAT
    onnx.save(proto, str(tmp_path / "format.onnx"))
    with pytest.raises(ModelFileError, match="format.onnx.*handedness_head=True"):
        read_onnx_config(tmp_path / "format.onnx")
    # Config and format say "no head" but the graph has the output: refused too.
    config = json.loads(metadata[META_CONFIG].value)
    config["handedness_head"] = False
    metadata[META_CONFIG].value = json.dumps(config)
    onnx.save(proto, str(tmp_path / "outputs.onnx"))
    with pytest.raises(ModelFileError, match=r"outputs.onnx.*expected \['depth'\] / \['uvd', 'confidence'\]"):
        read_onnx_config(tmp_path / "outputs.onnx")


def test_checkpoint_from_before_the_handedness_head_loads_exports_and_infers(tmp_path):
    """A model file written before the head existed (no handedness_head in its stored
    config, no head weights, like the shipped models/srnet_synthetic.*) still works
    everywhere; its handedness is unknown (None)."""
    from hand_pose_ros.inference.model_file import META_FORMAT, ONNX_FORMAT
    from hand_pose_ros.model import load_model

    old_config = CONFIG.replace(handedness_head=False)
    torch.manual_seed(3)
    model = SRNet(old_config).eval()
    path = save_checkpoint(tmp_path / "old.pt", model, old_config)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["handedness_head"]
    torch.save(payload, path)

    loaded, config, _ = load_model(path)
    assert config.handedness_head is False and loaded.handedness is None
    crops = realistic_crops(8)[:2]
    torch_out = TorchBackend.load(path, "cpu").infer_outputs(crops)
    assert torch_out.left_probability is None and torch_out.uvd.shape == (2, J, 3)
    report = export.export_checkpoint(path, tmp_path / "old.onnx")
    assert report["parity"]["uvd_max_abs_diff"] <= export.PARITY_TOLERANCE
    assert "handedness_max_abs_diff" not in report["parity"]
    proto = onnx.load(str(tmp_path / "old.onnx"))
    assert [o.name for o in proto.graph.output] == ["uvd", "confidence"]
    assert {p.key: p.value for p in proto.metadata_props}[META_FORMAT] == ONNX_FORMAT
    ort_out = OnnxRuntimeBackend.load(tmp_path / "old.onnx", "cpu").infer_outputs(crops)
    assert ort_out.left_probability is None and np.abs(ort_out.uvd - torch_out.uvd).max() <= 1e-4


def test_shape_check_catches_data_dependent_shapes():
    from onnx import TensorProto, helper
    node = helper.make_node("NonZero", ["x"], ["idx"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    problems = export.shape_problems(proto, batch=None)
    assert problems and "idx" in problems[0]


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch_on_realistic_crops(exported, batch):
    crops = realistic_crops(8)[-batch:]  # the synthetic generator's crops
    assert (crops != 0).any() and np.abs(crops).max() < 1
    uvd, confidence, left = OnnxRuntimeBackend.load(exported["onnx"], "cpu").infer_outputs(crops)
    with torch.no_grad():
        reference = exported["model"](torch.from_numpy(crops))
    assert uvd.shape == (batch, J, 3) and confidence.shape == (batch, J) and left.shape == (batch,)
    assert np.abs(uvd - reference["uvd"].numpy()).max() <= 1e-4
    assert np.abs(confidence - reference["confidence"].numpy()).max() <= 1e-4
    assert np.abs(left - reference["handedness"].numpy()).max() <= 1e-4
    assert np.abs(left - 0.5).max() > 1e-3  # a head that says something (see the fixture)
    # the torch backend on the checkpoint agrees too
    torch_uvd, _, torch_left = TorchBackend.load(exported["checkpoint"], "cpu").infer_outputs(crops)
    assert np.abs(torch_uvd - uvd).max() <= 1e-4 and np.abs(torch_left - left).max() <= 1e-4
    assert exported["report"]["parity"]["handedness_max_abs_diff"] <= export.PARITY_TOLERANCE


def test_parity_check_detects_a_different_model(exported):
    torch.manual_seed(5)
    other = SRNet(CONFIG).eval()
    result = export.parity(exported["onnx"], other, realistic_crops(8)[:2])
    assert result["uvd_max_abs_diff"] > 1e-3
    assert result["handedness_max_abs_diff"] > 1e-3  # the other head is undecided (0.5), ours is not


def test_fp16_path_has_no_nan_on_an_all_zero_crop():
    config = CONFIG
    torch.manual_seed(2)
    model = SRNet(config).eval()
    report = export.fp16_check(model, config, realistic_crops(8)[:1], device="cpu")
    assert report["finite"] and report["zero_crop_finite"] and report["device"] == "cpu"
    # and directly: half weights + half input, empty crop -> the depth decoder's 0 / eps, not NaN
    backend = TorchBackend.from_model(model, config, device="cpu", precision="fp16")
    uvd, confidence = backend.infer(np.zeros((2, 1, 128, 128), np.float32))
    assert np.isfinite(uvd).all() and np.isfinite(confidence).all()
    assert np.allclose(uvd[..., 2], 0.0)  # empty mask: depth decodes to the crop centre
    assert backend.describe()["fp16_mode"] == "half"


def test_fixed_batch_export(tmp_path):
    config = SRNetConfig(features=16, hourglass_level=1, stages=1)
    model = SRNet(config).eval()
    path = export.export_onnx(model, config, tmp_path / "fixed.onnx", batch=2)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert export.shape_problems(proto, batch=2) == []
    crops = realistic_crops(8)[2:4]
    assert export.parity(path, model, crops)["uvd_max_abs_diff"] <= 1e-4


def test_bad_arguments_and_inputs(exported, tmp_path):
    with pytest.raises(ValueError, match="opset 16"):
        export.export_onnx(exported["model"], CONFIG, tmp_path / "x.onnx", opset=16)
    with pytest.raises(ValueError, match="--batch"):
        export.parse_batch("many")
    assert export.parse_batch("dynamic") is None and export.parse_batch("8") == 8
    with pytest.raises(ModelFileError, match="tiny.onnx.*checkpoint"):
        export.export_checkpoint(exported["onnx"], tmp_path / "y.onnx")
    missing = tmp_path / "missing.pt"
    with pytest.raises(ModelFileError, match="missing.pt"):
        export.export_checkpoint(missing, tmp_path / "z.onnx")
    assert not (tmp_path / "z.onnx").exists()


# ----------------------------------------------------------------------------- hand-pose info
def test_info_json_for_checkpoint_and_onnx(exported, capsys):
    for path in (exported["checkpoint"], exported["onnx"]):
        assert cli.main(["info", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["config"] == CONFIG.to_dict() and info["num_joints"] == J
        assert info["keypoint_names"] == list(CONFIG.keypoint_names)
        assert info["summary"]["parameters"] == sum(p.numel() for p in exported["model"].parameters())
        assert info["summary"]["macs_per_frame"] > 0
    assert info["kind"] == "onnx" and info["onnx"]["opset"] == 17
    assert info["onnx"]["outputs"] == {"uvd": ["batch", J, 3], "confidence": ["batch", J],
                                       "handedness": ["batch"]}
    assert cli.main(["info", str(exported["checkpoint"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["training"] == {"epoch": 2}
    assert cli.main(["info", str(exported["checkpoint"])]) == 0
    text = capsys.readouterr().out
    assert f"J={J}" in text and "epoch: 2" in text and "GMAC per frame" in text


def test_info_bad_files(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "absent.onnx")]) == 1
    assert "absent.onnx: no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    assert cli.main(["info", str(junk), "--json"]) == 1
    captured = capsys.readouterr()
    assert "junk.pt:" in captured.err and captured.out == ""
