"""Backends behind one interface: loading, inference, the 'auto' choice, and one clear
error per bad model file. (TensorRT engine-cache logic: test_tensorrt_cache section below.)"""
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from hand_pose_ros.inference import backends  # noqa: E402
from hand_pose_ros.inference.backends.onnxruntime_backend import OnnxRuntimeBackend, providers_for  # noqa: E402
from hand_pose_ros.inference.backends.torch_backend import TorchBackend  # noqa: E402
from hand_pose_ros.inference.sample_inputs import realistic_crops  # noqa: E402
from hand_pose_ros.model import ModelFileError, SRNet, SRNetConfig, save_checkpoint  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = SRNetConfig(features=16, hourglass_level=1, stages=1)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", SRNet(config), config, epoch=1)


@pytest.fixture(scope="module")
def crops():
    return realistic_crops(2, seed=11)


def test_onnxruntime_backend_infers(random_onnx_model, crops):
    backend = OnnxRuntimeBackend.load(random_onnx_model, "cpu", threads=1)
    assert backend.name == "onnxruntime" and backend.config.num_joints == 21
    uvd, confidence = backend.infer(crops)
    assert uvd.shape == (2, 21, 3) and confidence.shape == (2, 21)
    assert uvd.dtype == np.float32 and np.isfinite(uvd).all()
    assert ((confidence >= 0) & (confidence <= 1)).all()
    # a single [m, m] crop is accepted and gives the same answer as in the batch
    single, _ = backend.infer(crops[1, 0])
    assert np.allclose(single[0], uvd[1], atol=1e-5)
    info = backend.describe()
    assert info["backend"] == "onnxruntime" and info["threads"] == 1 and info["providers"] == ["CPUExecutionProvider"]
    assert backend.warmup(batch_size=2, iterations=1) >= 0


def test_precise_norm_matches_the_plain_graph_closely(random_onnx_model, crops):
    plain = OnnxRuntimeBackend.load(random_onnx_model, "cpu", precise_norm=False).infer(crops)[0]
    precise = OnnxRuntimeBackend.load(random_onnx_model, "cpu").infer(crops)[0]
    assert np.abs(plain - precise).max() < 5e-3  # same model; only the summation order differs


def test_torch_backend_infers_and_rejects_bad_input(checkpoint, crops):
    backend = TorchBackend.load(checkpoint, "cpu")
    uvd, confidence = backend.infer(crops)
    assert uvd.shape == (2, 21, 3) and np.isfinite(uvd).all()
    assert backend.describe()["cuda_graph"] is False
    with pytest.raises(ValueError, match=r"crops must be \[B,1,128,128\].*\(2, 1, 64, 64\)"):
        backend.infer(np.zeros((2, 1, 64, 64), np.float32))
    with pytest.raises(ValueError, match="precision 'int8'"):
        TorchBackend.load(checkpoint, "cpu", precision="int8")
    with pytest.raises(ValueError, match="cuda_graph=True needs device 'cuda'"):
        TorchBackend.load(checkpoint, "cpu", cuda_graph=True)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_torch_cuda_fp16_graph_matches_fp32(checkpoint, crops):
    fp32 = TorchBackend.load(checkpoint, "cuda").infer(crops)[0]
    graph = TorchBackend.load(checkpoint, "cuda", precision="fp16", cuda_graph=True)
    graph.warmup(batch_size=4)
    fp16 = graph.infer(crops)[0]  # batch 2 padded into the captured batch-4 graph
    assert np.isfinite(fp16).all() and np.abs(fp16 - fp32).max() < 0.05
    assert np.isfinite(graph.infer(np.zeros((1, 1, 128, 128), np.float32))[0]).all()


# ----------------------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    for name in ("onnxruntime", "torch", "auto"):
        with pytest.raises(ModelFileError, match="nope.onnx: no such file"):
            backends.create_backend(name, tmp_path / "nope.onnx")


def test_onnx_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "text.onnx"
    bad.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelFileError, match="text.onnx: not a readable ONNX file"):
        OnnxRuntimeBackend.load(bad)


def test_truncated_onnx(random_onnx_model, tmp_path):
    data = random_onnx_model.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.onnx: .*(truncated|checker)"):
        OnnxRuntimeBackend.load(cut)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.onnx: ONNX file is empty"):
        OnnxRuntimeBackend.load(empty)


def test_onnx_without_our_metadata(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["depth"], ["uvd"])], "g",
                              [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, 128, 128])],
                              [helper.make_tensor_value_info("uvd", TensorProto.FLOAT, [1, 1, 128, 128])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(foreign))
    with pytest.raises(ModelFileError, match="foreign.onnx: ONNX file has no 'hand_pose_ros.model_config' metadata"):
        OnnxRuntimeBackend.load(foreign)


def test_wrong_joint_count_and_wrong_file_kind(checkpoint, random_onnx_model, tmp_path):
    with pytest.raises(ModelFileError, match="small.pt: model predicts J=21 joints, the caller expects J=14"):
        TorchBackend.load(checkpoint, "cpu", expected_keypoints=14)
    with pytest.raises(ModelFileError, match="random_srnet.onnx: model predicts joints"):
        OnnxRuntimeBackend.load(random_onnx_model, expected_keypoints=("wrist", "thumb_tip"))
    with pytest.raises(ModelFileError, match="random_srnet.onnx: the torch backend needs a PyTorch checkpoint"):
        TorchBackend.load(random_onnx_model)
    with pytest.raises(ModelFileError, match="small.pt: the onnxruntime backend needs an ONNX file"):
        OnnxRuntimeBackend.load(checkpoint)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated.pt: truncated"):
        backends.create_backend("auto", truncated)


def test_unknown_names_and_options(random_onnx_model):
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        backends.create_backend("tflite", random_onnx_model)
    with pytest.raises(TypeError, match="unknown options"):
        backends.create_backend("onnxruntime", random_onnx_model, cuda_graph=True)
    with pytest.raises(ValueError, match="runs the exported FP32 graph only"):
        backends.create_backend("onnxruntime", random_onnx_model, precision="fp16")


def test_onnxruntime_providers_for_cuda():
    with pytest.raises(RuntimeError, match="no CUDAExecutionProvider"):
        providers_for("cuda", "fp32", False, ["CPUExecutionProvider"])
    chain = providers_for("cuda:1", "fp16", True, ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                   "CPUExecutionProvider"])
    assert chain[0][0] == "TensorrtExecutionProvider" and chain[0][1]["trt_fp16_enable"] is True
    assert chain[1] == ("CUDAExecutionProvider", {"device_id": 1}) and chain[-1] == "CPUExecutionProvider"


# ----------------------------------------------------------------------------- auto
@pytest.fixture
def machine(monkeypatch):
    """Pretend-hardware: set .trt / .gpu / .torch_gpu to choose what 'auto' sees."""
    class Machine:
        trt = gpu = torch_gpu = False
    m = Machine()
    monkeypatch.setattr(backends, "tensorrt_available", lambda: m.trt)
    monkeypatch.setattr(backends, "cuda_available", lambda: m.gpu)
    monkeypatch.setattr(backends, "torch_cuda_available", lambda: m.torch_gpu)
    return m


def test_auto_prefers_tensorrt_then_torch_cuda_then_onnxruntime(machine, checkpoint, random_onnx_model):
    machine.trt = machine.gpu = machine.torch_gpu = True
    assert backends.choose_backend(random_onnx_model).backend == "tensorrt"
    # a checkpoint without an ONNX file: TensorRT has nothing to build from -> torch CUDA
    choice = backends.choose_backend(checkpoint)
    assert (choice.backend, choice.device) == ("torch", "cuda") and "no ONNX file" in choice.reason
    machine.trt = False
    choice = backends.choose_backend(checkpoint)
    assert (choice.backend, choice.device) == ("torch", "cuda") and "tensorrt does not import" in choice.reason
    # asked for the CPU: the GPU is not used
    assert backends.choose_backend(random_onnx_model, device="cpu").backend == "onnxruntime"
    machine.trt = machine.gpu = machine.torch_gpu = False
    choice = backends.choose_backend(random_onnx_model)
    assert (choice.backend, choice.device) == ("onnxruntime", "cpu") and "no CUDA GPU" in choice.reason
    choice = backends.choose_backend(checkpoint)
    assert (choice.backend, choice.device) == ("torch", "cpu") and "only a checkpoint" in choice.reason


def test_auto_uses_the_checkpoints_own_onnx_export(machine, checkpoint, tmp_path, caplog):
    import shutil

    from hand_pose_ros.inference.export import export_checkpoint
    own = tmp_path / "small.pt"
    shutil.copy(checkpoint, own)
    export_checkpoint(own, tmp_path / "small.onnx", verify=False)
    with caplog.at_level(logging.INFO, logger="hand_pose_ros.inference"):
        backend = backends.create_backend("auto", own)
    assert backend.name == "onnxruntime" and backend.model_path == tmp_path / "small.onnx"
    assert "backend auto -> onnxruntime" in caplog.text
    # a same-named ONNX file exported from other weights is not used
    torch.manual_seed(9)
    save_checkpoint(own, SRNet(backend.config), backend.config)
    assert backends.sibling_onnx(own) is None
    assert backends.choose_backend(own).backend == "torch"
