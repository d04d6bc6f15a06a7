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
from hand_pose_ros.inference.model_file import sha256_file  # noqa: E402
from hand_pose_ros.inference.sample_inputs import realistic_crops  # noqa: E402
from hand_pose_ros.model import ModelFileError, SRNet, SRNetConfig, save_checkpoint  # noqa: E402

from conftest import RANDOM_MODEL_LEFT_PROBABILITY  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    config = SRNetConfig(features=16, hourglass_level=1, stages=1)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", SRNet(config), config, epoch=1)


@pytest.fixture(scope="module")
def crops():
    return realistic_crops(8)[3:5]


def test_onnxruntime_backend_infers(random_onnx_model, crops):
    backend = OnnxRuntimeBackend.load(random_onnx_model, "cpu", threads=1)
    assert backend.name == "onnxruntime" and backend.config.num_joints == 21
    uvd, confidence = backend.infer(crops)
    assert uvd.shape == (2, 21, 3) and confidence.shape == (2, 21)
    assert uvd.dtype == np.float32 and np.isfinite(uvd).all()
    assert ((confidence >= 0) & (confidence <= 1)).all()
    # The handedness output, through the same interface (conftest: the model says left).
    outputs = backend.infer_outputs(crops)
    assert backend.has_handedness and backend.describe()["handedness"] is True
    assert outputs.left_probability.shape == (2,) and outputs.left_probability.dtype == np.float32
    np.testing.assert_allclose(outputs.left_probability, RANDOM_MODEL_LEFT_PROBABILITY, atol=1e-5)
    assert np.array_equal(outputs.uvd, uvd)
    # a single [m, m] crop is accepted and gives the same answer as in the batch
    single, _ = backend.infer(crops[1, 0])
    assert np.allclose(single[0], uvd[1], atol=1e-5)
    info = backend.describe()
    assert info["backend"] == "onnxruntime" and info["threads"] == 1 and info["providers"] == ["CPUExecutionProvider"]
    assert backend.warmup(batch_size=2, iterations=1) >= 0


def test_onnxruntime_int8_is_quantised_once_and_cached(random_onnx_model, crops, tmp_path):
    calibration = np.concatenate([crops] * 4)  # 8 crops: one calibration batch
    first = OnnxRuntimeBackend.load(random_onnx_model, "cpu", precision="int8", calibration_crops=calibration,
                                    cache_dir=tmp_path, threads=1)
    cached = list(tmp_path.glob("*-int8-*onnxruntime*.engine"))
    assert len(cached) == 1 and first.precision == "int8"
    uvd, confidence = first.infer(crops)
    assert uvd.shape == (2, 21, 3) and np.isfinite(uvd).all() and np.isfinite(confidence).all()
    # The head stays FP32 (only convolutions are quantised) and still answers.
    np.testing.assert_allclose(first.infer_outputs(crops).left_probability, RANDOM_MODEL_LEFT_PROBABILITY,
                               atol=1e-3)
    stamp, digest = cached[0].stat().st_mtime_ns, sha256_file(cached[0])
    # Reused, not rebuilt: the same file, untouched. (Quantising again is not a test of the
    # cache: calibration runs ONNX Runtime with all cores, and nothing promises the same
    # activation ranges, hence the same model, from another run or core count.)
    again = OnnxRuntimeBackend.load(random_onnx_model, "cpu", precision="int8", calibration_crops=calibration,
                                    cache_dir=tmp_path, threads=1)
    assert cached[0].stat().st_mtime_ns == stamp and sha256_file(cached[0]) == digest
    assert list(tmp_path.glob("*-int8-*onnxruntime*.engine")) == cached
    # The same model and the same thread count: bit-equal. (Across thread counts ONNX
    # Runtime may split a reduction differently; the H200's 16 cores against threads=1 did.)
    assert np.array_equal(again.infer(crops)[0], uvd)
    ops = {node.op_type for node in __import__("onnx").load(str(cached[0])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_precise_norm_matches_the_plain_graph_closely(random_onnx_model, crops):
    plain = OnnxRuntimeBackend.load(random_onnx_model, "cpu", precise_norm=False).infer(crops)[0]
    precise = OnnxRuntimeBackend.load(random_onnx_model, "cpu").infer(crops)[0]
    assert np.abs(plain - precise).max() < 5e-3  # same model; only the summation order differs


def test_torch_backend_infers_and_rejects_bad_input(checkpoint, crops):
    backend = TorchBackend.load(checkpoint, "cpu")
    uvd, confidence = backend.infer(crops)
    assert uvd.shape == (2, 21, 3) and np.isfinite(uvd).all()
    left = backend.infer_outputs(crops).left_probability
    assert left.shape == (2,) and np.array_equal(left, np.full(2, 0.5, np.float32))  # untrained: undecided
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
    assert graph.infer_outputs(crops).left_probability.shape == (2,)  # the graph replays the head too
    assert np.isfinite(graph.infer(np.zeros((1, 1, 128, 128), np.float32))[0]).all()


def test_torch_bf16_and_channels_last_match_fp32_on_cpu(checkpoint, crops, random_onnx_model):
    """bf16 (weights converted, or autocast) and NHWC give the FP32 answer to bf16's
    precision; the decoders stay FP32, so an empty crop gives finite outputs."""
    fp32 = TorchBackend.load(checkpoint, "cpu").infer(crops)[0]
    empty = np.zeros((1, 1, 128, 128), np.float32)
    for opts in (dict(precision="bf16"), dict(precision="bf16", fp16_mode="autocast"),
                 dict(precision="fp32", channels_last=True), dict(precision="bf16", channels_last=True)):
        backend = TorchBackend.load(checkpoint, "cpu", **opts)
        uvd = backend.infer(crops)[0]
        assert np.abs(uvd - fp32).max() < (1e-4 if opts["precision"] == "fp32" else 0.5), opts
        assert np.isfinite(backend.infer(empty)[0]).all(), opts
        info = backend.describe()
        assert info["precision"] == opts["precision"] and info["channels_last"] == opts.get("channels_last", False)
    with pytest.raises(ValueError, match="precision 'bf16' is not supported"):
        OnnxRuntimeBackend.load(random_onnx_model, "cpu", precision="bf16")


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_torch_cuda_bf16_channels_last_graph_and_compile_match_fp32(checkpoint, crops, tmp_path, monkeypatch):
    """The H200 settings of gpu_report: bf16 NHWC in a CUDA graph, and torch.compile
    (reduce-overhead) of it with the kernel cache in a fresh folder."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    fp32 = TorchBackend.load(checkpoint, "cuda").infer(crops)[0]
    graph = TorchBackend.load(checkpoint, "cuda", precision="bf16", channels_last=True, cuda_graph=True)
    graph.warmup(batch_size=2)
    assert np.abs(graph.infer(crops)[0] - fp32).max() < 0.5
    assert np.isfinite(graph.infer(np.zeros((1, 1, 128, 128), np.float32))[0]).all()
    compiled = TorchBackend.load(checkpoint, "cuda", precision="bf16", channels_last=True, compile=True,
                                 compile_mode="reduce-overhead")
    assert np.abs(compiled.infer(crops)[0] - fp32).max() < 0.5
    assert compiled.describe()["compiled"] and any((tmp_path / "inductor").rglob("*"))


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
    with pytest.raises(ValueError, match="runs fp32 or int8"):
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
    monkeypatch.setattr(backends, "tensorrt_problem", lambda: None if m.trt else "tensorrt does not import")
    monkeypatch.setattr(backends, "cuda_available", lambda: m.gpu)
    monkeypatch.setattr(backends, "torch_cuda_available", lambda: m.torch_gpu)
    return m


def test_auto_prefers_tensorrt_then_torch_cuda_then_onnxruntime(machine, checkpoint, random_onnx_model):
    machine.trt = machine.gpu = machine.torch_gpu = True
    assert backends.choose_backend(random_onnx_model).backend == "tensorrt"
    # a checkpoint alone: the tensorrt backend exports it to ONNX first
    choice = backends.choose_backend(checkpoint)
    assert (choice.backend, choice.model_path) == ("tensorrt", checkpoint)
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


def test_auto_falls_back_to_onnxruntime_when_tensorrt_has_no_cuda_binding(random_onnx_model, monkeypatch, caplog):
    """JetPack ships TensorRT's Python bindings but neither pycuda nor cuda-python: 'auto'
    must run ONNX Runtime and say why, not fail at start-up."""
    import sys
    import types
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart", "pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)  # unimportable
    monkeypatch.setattr(backends, "cuda_available", lambda: True)  # torch sees the GPU
    assert "neither cuda-python nor pycuda" in backends.tensorrt_problem()
    with caplog.at_level(logging.INFO, logger="hand_pose_ros.inference"):
        backend = backends.create_backend("auto", random_onnx_model, cpu_threads=1)
    assert backend.name == "onnxruntime" and backend.describe()["threads"] == 1
    assert "backend auto -> onnxruntime" in caplog.text and "neither cuda-python nor pycuda" in caplog.text


def test_cpu_threads_do_not_need_torch(random_onnx_model):
    """The pose node's cpu_threads > 0 on a robot without torch: ONNX Runtime gets the
    threads, and torch is never imported."""
    import subprocess
    import sys
    pytest.importorskip("rclpy")  # the pose node's module imports ROS (absent on the GPU machine)
    code = f"""
import sys
sys.modules["torch"] = None  # unimportable, as on a robot without it
from hand_pose_ros.ros.pose_node import PARAMS, load_estimator
values = {{p.name: p.default for p in PARAMS}}
values.update(model_path={str(random_onnx_model)!r}, cpu_threads=2, backend="auto", device="cpu")
estimator, _ = load_estimator(values)
info = estimator.backend.describe()
assert info["backend"] == "onnxruntime" and info["threads"] == 2, info
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_cpu_threads_reach_the_torch_backend(checkpoint):
    before = torch.get_num_threads()
    try:
        backends.create_backend("torch", checkpoint, "cpu", cpu_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_auto_uses_the_checkpoints_own_onnx_export(machine, checkpoint, random_onnx_model, tmp_path, caplog):
    import shutil

    import onnx

    from hand_pose_ros.inference.model_file import META_SOURCE_SHA256, sha256_file
    own = tmp_path / "small.pt"
    shutil.copy(checkpoint, own)
    # An ONNX file whose metadata says it was exported from exactly this checkpoint (what
    # `hand-pose export` records), next to it under the same name.
    proto = onnx.load(str(random_onnx_model))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_SOURCE_SHA256, sha256_file(own)
    onnx.save(proto, str(tmp_path / "small.onnx"))
    with caplog.at_level(logging.INFO, logger="hand_pose_ros.inference"):
        backend = backends.create_backend("auto", own)
    assert backend.name == "onnxruntime" and backend.model_path == tmp_path / "small.onnx"
    assert "backend auto -> onnxruntime" in caplog.text
    # once the checkpoint changes, that ONNX file is no longer its export
    torch.manual_seed(9)
    save_checkpoint(own, SRNet(backend.config), backend.config)
    assert backends.sibling_onnx(own) is None
    assert backends.choose_backend(own).backend == "torch"


# ----------------------------------------------------------------------------- TensorRT (no TensorRT needed)
from hand_pose_ros.inference.backends.engine_cache import (CalibrationBatches, EngineCache, EngineKey,  # noqa: E402
                                                           plan_precision, trtexec_command)

KEY = EngineKey(onnx_sha256="ab" * 32, precision="fp16", batch_profile=(1, 1, 32), runtime_version="10.3.0",
                device_name="NVIDIA Jetson AGX Orin", workspace_mb=2048)


def test_engine_key_changes_with_everything_an_engine_depends_on():
    import dataclasses
    same = EngineKey(**{**dataclasses.asdict(KEY), "batch_profile": [1, 1, 32]})
    assert same.filename() == KEY.filename() and same.digest() == KEY.digest()
    changes = [dict(runtime_version="10.4.0"), dict(device_name="NVIDIA H100 80GB HBM3"), dict(precision="fp32"),
               dict(onnx_sha256="cd" * 32), dict(batch_profile=(1, 8, 64)), dict(calibration_sha256="ef" * 32),
               dict(workspace_mb=1024), dict(runtime="onnxruntime"), dict(build_recipe="v3-0123456789abcdef"),
               dict(compute_capability="7.2"), dict(platform_release="L4T R36.4.4")]
    names = {dataclasses.replace(KEY, **change).filename() for change in changes}
    assert len(names) == len(changes) and KEY.filename() not in names
    assert "fp16" in KEY.filename() and "nvidia-jetson-agx-orin" in KEY.filename() and "trt10.3.0" in KEY.filename()
    with pytest.raises(ValueError, match="batch profile"):
        dataclasses.replace(KEY, batch_profile=(4, 1, 32))


class FakeBuilder:
    """Stands in for a TensorRT build: returns fresh bytes and counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return b"engine-" + bytes(range(200)) * 50 + str(self.calls).encode()


def test_engine_cache_builds_once_then_reuses(tmp_path):
    cache, build = EngineCache(tmp_path / "engines"), FakeBuilder()
    engine, path, built = cache.get_or_build(KEY, build)
    assert built and build.calls == 1 and path.read_bytes() == engine and path.parent == tmp_path / "engines"
    again, again_path, built = cache.get_or_build(KEY, build)
    assert not built and build.calls == 1 and again == engine and again_path == path
    # another precision (or GPU, TensorRT version, ONNX file) is another engine
    cache.get_or_build(EngineKey(**{**KEY.to_dict(), "precision": "fp32"}), build)
    assert build.calls == 2
    cache.get_or_build(KEY, build, force=True)
    assert build.calls == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_sidecar", "foreign_sidecar", "rejected"])
def test_damaged_cached_engine_is_rebuilt(tmp_path, damage, caplog):
    cache, build = EngineCache(tmp_path), FakeBuilder()
    _, path, _ = cache.get_or_build(KEY, build)
    sidecar = cache.sidecar_path(KEY)
    deserialize = None
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[500] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "no_sidecar":
        sidecar.unlink()
    elif damage == "foreign_sidecar":
        sidecar.write_text(sidecar.read_text().replace("10.3.0", "8.6.1"))
    else:  # the bytes are intact but TensorRT will not deserialise them (another version)
        seen = []
        deserialize = lambda data: None if not seen and not seen.append(1) else data  # noqa: E731
    with caplog.at_level(logging.INFO, logger="hand_pose_ros.inference"):
        engine, path2, built = cache.get_or_build(KEY, build, deserialize=deserialize)
    assert built and build.calls == 2 and path2 == path and path.read_bytes() == engine
    assert "rebuilding" in caplog.text and "building FP16" in caplog.text and "with tensorrt 10.3.0" in caplog.text
    assert "saved" in caplog.text
    assert cache.load(KEY) == engine  # and the new file is valid


def test_failed_build_and_unwritable_cache(tmp_path):
    with pytest.raises(RuntimeError, match="build failed"):
        EngineCache(tmp_path).get_or_build(KEY, lambda: None)
    assert not EngineCache(tmp_path).engine_path(KEY).exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(RuntimeError, match="a_file/engines is not writable"):
        EngineCache(blocker / "engines")


def test_default_cache_dir(monkeypatch, tmp_path):
    from hand_pose_ros.inference.backends import engine_cache
    monkeypatch.delenv(engine_cache.CACHE_ENV, raising=False)
    assert str(engine_cache.default_cache_dir()).endswith(".cache/hand_pose_ros/engines")
    monkeypatch.setenv(engine_cache.CACHE_ENV, str(tmp_path / "x"))
    assert EngineCache().directory == tmp_path / "x"


def test_build_recipe_names_flags_fp32_layers_and_profiles():
    from hand_pose_ros.inference.backends.engine_cache import BUILD_RECIPE_VERSION, PrecisionPlan, build_recipe
    fp16 = plan_precision("fp16")
    recipe = build_recipe(fp16, (1, 1, 32))
    assert recipe.startswith(f"v{BUILD_RECIPE_VERSION}-") and recipe == build_recipe(fp16, [1, 1, 32])
    others = {build_recipe(plan_precision("fp32"), (1, 1, 32)), build_recipe(fp16, (1, 4, 32)),
              build_recipe(PrecisionPlan("fp16", fp16.set_flags, (), ("NORMALIZATION",)), (1, 1, 32)),
              build_recipe(plan_precision("int8"), (1, 1, 32), (32, 32, 32)),
              build_recipe(plan_precision("int8"), (1, 1, 32), (16, 16, 16))}
    assert len(others) == 5 and recipe not in others


@pytest.mark.parametrize("text, release", [
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n",
     "L4T R36.4.3"),
    ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref, EABI: aarch64\n", "L4T R35.5.0"),
    ("something else entirely\n", "L4T something-else-entirely"),
    (None, "")])
def test_l4t_release_of_a_jetson(tmp_path, text, release):
    from hand_pose_ros.inference.backends.engine_cache import l4t_release
    path = tmp_path / "nv_tegra_release"
    if text is not None:
        path.write_text(text)
    assert l4t_release(path) == release


def test_precision_plans():
    fp16 = plan_precision("fp16")
    assert "FP16" in fp16.set_flags and "NORMALIZATION" in fp16.fp32_layer_types
    assert plan_precision("fp32").clear_flags == ("TF32",) and plan_precision("fp32").fp32_layer_types == ()
    int8 = plan_precision("int8")
    assert {"INT8", "FP16"} <= set(int8.set_flags)
    assert plan_precision("fp16", fast_fp16=False).notes
    with pytest.raises(ValueError, match="no fast INT8"):
        plan_precision("int8", fast_int8=False)
    with pytest.raises(ValueError, match="'bf16'"):
        plan_precision("bf16")


def test_calibration_batches():
    data = np.random.default_rng(0).uniform(-1, 1, (70, 1, 128, 128)).astype(np.float32)
    batches = CalibrationBatches(data, batch_size=32)
    chunks = list(batches)
    assert len(batches) == 2 and [c.shape for c in chunks] == [(32, 1, 128, 128)] * 2
    assert all(c.flags.c_contiguous and c.dtype == np.float32 for c in chunks)
    assert np.array_equal(chunks[1][0], data[32])
    assert batches.sha256() != CalibrationBatches(data[::-1], batch_size=32).sha256()
    with pytest.raises(ValueError, match="at least one full calibration batch"):
        CalibrationBatches(data[:10], batch_size=32)
    bad = data.copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CalibrationBatches(bad, batch_size=32)


def test_trtexec_equivalent():
    command = trtexec_command("m.onnx", "m.engine", "fp16", (1, 1, 32))
    assert command.startswith("trtexec --onnx=m.onnx --saveEngine=m.engine")
    assert "--minShapes=depth:1x1x128x128" in command and "--maxShapes=depth:32x1x128x128" in command
    assert "--fp16" in command and "--noTF32" in trtexec_command("m.onnx", "e", "fp32")


def test_tensorrt_backend_missing_gives_a_clear_error(random_onnx_model, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_tensorrt(name, *args, **kwargs):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorrt)
    with pytest.raises(RuntimeError, match="needs the TensorRT 10 Python bindings"):
        backends.create_backend("tensorrt", random_onnx_model)


def run_on_another_thread(function):
    """function() on a new thread (as the pose node's worker runs inference); its result."""
    import threading
    result = {}

    def work():
        try:
            result["value"] = function()
        except Exception as e:  # re-raised here
            result["error"] = e

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_torch_cuda_backend_infers_from_another_thread_on_its_device(checkpoint, crops, cuda_graph):
    """Loaded on this thread, run on a worker thread, on the last GPU (cuda:1 and up on a
    multi-GPU host: a worker thread's current device is cuda:0)."""
    device = f"cuda:{torch.cuda.device_count() - 1}"
    backend = TorchBackend.load(checkpoint, device, precision="fp16" if cuda_graph else None, cuda_graph=cuda_graph)
    # First call on the worker: that is where the CUDA graph gets captured.
    uvd = run_on_another_thread(lambda: backend.infer(crops)[0])
    assert np.isfinite(uvd).all()
    again = backend.infer(crops)[0]
    if cuda_graph:
        assert np.array_equal(again, uvd)  # the same captured kernels on this thread
    else:
        # eager: cudnn.benchmark may time and pick another convolution algorithm for this
        # thread's first call (on the H200 the two differed by ~1e-5)
        np.testing.assert_allclose(again, uvd, rtol=1e-4, atol=1e-4)


def test_tensorrt_engine_infers_from_another_thread(random_onnx_model, crops, tmp_path):
    pytest.importorskip("tensorrt")
    from hand_pose_ros.inference.backends.cuda_memory import cuda_binding_name
    if not CUDA or cuda_binding_name() is None:
        pytest.skip("needs a CUDA GPU and cuda-python or pycuda")
    device = f"cuda:{torch.cuda.device_count() - 1}"
    reference = OnnxRuntimeBackend.load(random_onnx_model).infer(crops)[0]
    backend = backends.create_backend("tensorrt", random_onnx_model, device=device, precision="fp32",
                                      cache_dir=tmp_path)
    uvd = run_on_another_thread(lambda: backend.infer(crops)[0])
    assert np.abs(uvd - reference).max() < 1e-3 and backend.describe()["cuda_device"] == int(device[-1])


def test_tensorrt_engine_matches_onnxruntime(random_onnx_model, crops, tmp_path):
    pytest.importorskip("tensorrt")
    if not CUDA:
        pytest.skip("needs a CUDA GPU")
    reference = OnnxRuntimeBackend.load(random_onnx_model).infer(crops)[0]
    fp32 = backends.create_backend("tensorrt", random_onnx_model, precision="fp32", cache_dir=tmp_path)
    assert fp32.built and np.abs(fp32.infer(crops)[0] - reference).max() < 1e-3
    again = backends.create_backend("tensorrt", random_onnx_model, precision="fp32", cache_dir=tmp_path)
    assert not again.built and again.engine_path == fp32.engine_path
    fp16 = backends.create_backend("tensorrt", random_onnx_model, cache_dir=tmp_path)
    assert fp16.precision == "fp16" and np.isfinite(fp16.infer(np.zeros((1, 1, 128, 128), np.float32))[0]).all()
