"""Training and validation data for every dataset, delivered as batches on the device.

- synthetic: batches come straight from the generator on the training device (no
  DataLoader, no host copies); a fixed number of steps per epoch. Each rank has its own
  generator, seeded with a rank offset, so ranks see different hands. The validation set
  is generated once at start with a separate seed (the fixed TEST set is never used here).
- disk datasets (nyu, icvl, msra, hands2017): a reader yields Samples; CropDataset crops
  them with the shared crop code around the ground-truth-based centre (below) in
  DataLoader workers. The sampler is a DistributedSampler (also at world size 1): its
  order depends only on (seed, epoch), which makes mid-epoch resume exact.

Augmentation is not done here: the trainer applies data.augment on the device with its own
seeded generator, the same for every dataset.

Ground-truth-based crop centre (training and validation frames), as the SRNet release
does: take the mean of the labelled joints, keep the pixels inside the cube around it
(+-cube*f/d px in the image, +-cube mm in depth), and use the centre of mass of what is
left (mean pixel u, v and mean depth d). The real pipeline uses the localiser instead; the
eval command reports that case.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..camera import Intrinsics
from ..data.crop import CropBatch, crop_hand, recover_uvd
from ..evaluation.metrics import joint_errors_mm


@dataclass
class TrainBatch:
    crops: torch.Tensor          # [B,1,m,m] normalised depth, on the device
    uvd_norm: torch.Tensor       # [B,J,3] normalised labels
    box: torch.Tensor | None     # [B] crop box sizes (exact augmentation), None if unknown
    half_cube_mm: torch.Tensor   # [B]
    is_left: torch.Tensor | None = None  # [B] bool handedness labels; None: the dataset has none


@dataclass
class EvalBatch:
    crops: torch.Tensor          # [B,1,m,m] on the device
    gt_uvd: np.ndarray           # [B,J,3] ground truth (u px, v px, d mm)
    crop: CropBatch              # com_uvd, box, half_cube_mm of each crop (numpy)
    cams: object                 # one Intrinsics for all frames, or a list of B
    is_left: np.ndarray | None = None  # [B] bool handedness labels; None: the dataset has none


# ----------------------------------------------------------------------------- crop centre

def ground_truth_centre(depth_mm: np.ndarray, uvd: np.ndarray, cam: Intrinsics,
                        half_cube_mm: float) -> np.ndarray:
    """The release's training centre: centre of mass of the pixels inside the cube around
    the mean joint. depth_mm [H, W], uvd [J, 3] -> [3] (u px, v px, d mm). Falls back to the
    joint mean when no pixel survives (an empty or mislabelled frame)."""
    mean = np.asarray(uvd, dtype=np.float64).mean(axis=0)  # [3]
    if not (np.isfinite(mean).all() and mean[2] > 0):
        raise ValueError(f"labels give no valid centre (mean joint {mean.tolist()})")
    half_u = half_cube_mm * abs(cam.fx) / mean[2]
    half_v = half_cube_mm * abs(cam.fy) / mean[2]
    height, width = depth_mm.shape
    left, right = max(int(mean[0] - half_u), 0), min(int(mean[0] + half_u), width)
    top, bottom = max(int(mean[1] - half_v), 0), min(int(mean[1] + half_v), height)
    window = depth_mm[top:bottom, left:right]
    inside = (window > mean[2] - half_cube_mm) & (window < mean[2] + half_cube_mm) & (window > 0)
    if not inside.any():
        return mean
    rows, cols = np.nonzero(inside)
    return np.array([cols.mean() + left, rows.mean() + top, float(window[inside].mean())])


# ----------------------------------------------------------------------------- disk datasets

class CropDataset(Dataset):
    """Reader samples -> normalised crops and labels, one frame per item.

    reader: anything with len() and reader[i] -> Sample (labelled). indices: which frames.
    Items are dicts of numpy arrays, collated by the default collate function."""

    def __init__(self, reader, indices, input_size: int, keypoint_names):
        self.reader = reader
        self.indices = np.asarray(indices, dtype=np.int64)
        self.input_size = int(input_size)
        self.keypoint_names = tuple(keypoint_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        sample = self.reader[int(self.indices[i])]
        if sample.uvd is None:
            raise ValueError(f"frame {sample.name!r} has no labels; training needs labelled frames")
        if tuple(sample.keypoint_names) != self.keypoint_names:
            raise ValueError(f"frame {sample.name!r} has joints {sample.keypoint_names}, "
                             f"expected {self.keypoint_names}")
        centre = ground_truth_centre(sample.depth_mm, sample.uvd, sample.cam, sample.half_cube_mm)
        crop = crop_hand(sample.depth_mm, centre, sample.cam, sample.half_cube_mm, self.input_size)
        cam = sample.cam
        return {
            "crops": crop.image[None].astype(np.float32),                      # [1,m,m]
            "uvd_norm": crop.normalise_uvd(sample.uvd).astype(np.float32),     # [J,3]
            "gt_uvd": np.asarray(sample.uvd, dtype=np.float64),                # [J,3]
            "com_uvd": np.asarray(crop.com_uvd, dtype=np.float64),             # [3]
            "box": np.int64(crop.box),
            "half_cube_mm": np.float64(crop.half_cube_mm),
            "cam": np.array([cam.fx, cam.fy, cam.cx, cam.cy], dtype=np.float64),
        }


class ResumableSampler(torch.utils.data.Sampler):
    """DistributedSampler's indices for (seed, epoch, rank), optionally skipping the first
    `skip` batches' worth (to resume in the middle of an epoch)."""

    def __init__(self, size: int, batch_size: int, rank: int, world_size: int, seed: int,
                 shuffle: bool = True):
        self.inner = DistributedSampler(range(size), num_replicas=world_size, rank=rank,
                                        shuffle=shuffle, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip_batches * self.batch_size

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


class DiskTrainStream:
    """Training batches of a disk dataset through a DataLoader, moved to the device."""

    def __init__(self, dataset: CropDataset, batch_size: int, device: torch.device, seed: int,
                 rank: int, world_size: int, num_workers: int):
        self.device = device
        self.sampler = ResumableSampler(len(dataset), batch_size, rank, world_size, seed)
        self.steps_per_epoch = len(self.sampler.inner) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(dataset)} training frames are fewer than one batch of "
                             f"{batch_size} per process (x {world_size} processes)")
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler,
                                 num_workers=num_workers, drop_last=True,
                                 pin_memory=device.type == "cuda",
                                 persistent_workers=num_workers > 0)

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[TrainBatch]:
        self.sampler.set_epoch(epoch, start_step)
        for item in self.loader:
            yield TrainBatch(
                crops=item["crops"].to(self.device, non_blocking=True),
                uvd_norm=item["uvd_norm"].to(self.device, non_blocking=True),
                box=item["box"].to(self.device, non_blocking=True),
                half_cube_mm=item["half_cube_mm"].to(self.device, non_blocking=True))

    def state_dict(self) -> dict:
        return {}  # the order depends only on (seed, epoch): nothing to save

    def load_state_dict(self, state: dict) -> None:
        pass

    def reseed(self, seed: int) -> None:
        pass  # the order depends only on (seed, epoch)


class DiskEvalSet:
    """Validation frames of a disk dataset, sharded over ranks (rank r takes r::world)."""

    def __init__(self, dataset: CropDataset, batch_size: int, device: torch.device, rank: int,
                 world_size: int, num_workers: int):
        self.device = device
        self.frames = len(dataset)
        shard = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world_size)))
        self.loader = DataLoader(shard, batch_size=batch_size, shuffle=False,
                                 num_workers=num_workers)

    def batches(self) -> Iterator[EvalBatch]:
        for item in self.loader:
            cams = [Intrinsics(*row) for row in item["cam"].tolist()]
            crop = CropBatch(image=None, com_uvd=item["com_uvd"].numpy(),
                             box=item["box"].numpy(), half_cube_mm=item["half_cube_mm"].numpy())
            yield EvalBatch(crops=item["crops"].to(self.device), gt_uvd=item["gt_uvd"].numpy(),
                            crop=crop, cams=cams)


# ----------------------------------------------------------------------------- evaluation

def batch_errors_mm(pred_uvd_norm: torch.Tensor, batch: EvalBatch) -> np.ndarray:
    """Per-frame mean 3D joint error in mm: recover the normalised predictions to pixels with
    each crop's centre and box, then compare in xyz with the evaluation metrics. -> [B]."""
    pred = recover_uvd(pred_uvd_norm.detach().double().cpu().numpy(), batch.crop)  # [B,J,3]
    errors = joint_errors_mm(batch.gt_uvd, pred, batch.cams)                     # [B,J]
    return errors.mean(axis=1)


def held_out_split(frames: int, val_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): the last val_frames frames are held out (a
    contiguous tail, so neighbouring video frames do not leak into training)."""
    if frames < 2:
        raise ValueError(f"only {frames} labelled frames: cannot hold out a validation set")
    val = min(val_frames, max(1, math.floor(frames * 0.2)))
    return np.arange(frames - val), np.arange(frames - val, frames)


# ----------------------------------------------------------------------------- synthetic

class SyntheticTrainStream:
    """Synthetic training batches made on the device by the hand generator, from this rank's
    own torch.Generator (its state is saved for exact resume).

    The generator's cost on a GPU is mostly per-call (kernel launches, a few host syncs), so
    it renders `render_batch_size` frames at once and serves them in slices of batch_size
    (synthetic.SyntheticSampler): on an H200, 1024 frames per call make about 6,500 crops/s
    against 1,300 crops/s for calls of 128. On CUDA the render runs on a side stream, so it
    overlaps the GPU work of the step the training loop queued just before."""

    def __init__(self, batch_size: int, steps_per_epoch: int, device: torch.device, seed: int,
                 half_cube_mm: float, synthetic_config, input_size: int = 128,
                 render_batch_size: int | None = None):
        from ..data.synthetic import SyntheticSampler

        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.device = device
        self.half_cube_mm = float(half_cube_mm)
        if render_batch_size is None:
            render_batch_size = max(batch_size, 1024) if device.type == "cuda" else batch_size
        self.sampler = SyntheticSampler(batch_size, synthetic_config, seed=seed, device=device,
                                        half_cube_mm=half_cube_mm, out_size=input_size,
                                        render_batch_size=render_batch_size)
        self.side_stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def _generate(self) -> TrainBatch:
        crops, uvd_norm, info = next(self.sampler)
        box = torch.as_tensor(info["box"], device=self.device)
        cube = torch.full((self.batch_size,), self.half_cube_mm, device=self.device)
        is_left = torch.as_tensor(info["is_left"], device=self.device).to(torch.bool)
        return TrainBatch(crops=crops, uvd_norm=uvd_norm, box=box, half_cube_mm=cube, is_left=is_left)

    def next_batch(self) -> TrainBatch:
        if self.side_stream is None:
            return self._generate()
        with torch.cuda.stream(self.side_stream):
            batch = self._generate()
        main = torch.cuda.current_stream(self.device)
        main.wait_stream(self.side_stream)  # training kernels start after the batch is made
        for tensor in (batch.crops, batch.uvd_norm, batch.box, batch.half_cube_mm, batch.is_left):
            tensor.record_stream(main)      # memory stays reserved until main is done with it
        return batch

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[TrainBatch]:
        for _ in range(start_step, self.steps_per_epoch):
            yield self.next_batch()

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)

    def reseed(self, seed: int) -> None:
        self.sampler.load_state_dict({"seed": seed, "generator": _seeded_state(seed, self.device)})


def _seeded_state(seed: int, device) -> torch.Tensor:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator.get_state()


class TensorEvalSet:
    """A validation set held in memory (the synthetic one): crops on the device, labels and
    crop parameters on the host; rank r scores frames r::world."""

    def __init__(self, crops, gt_uvd, com_uvd, box, half_cube_mm, cam: Intrinsics,
                 batch_size: int, rank: int = 0, world_size: int = 1, is_left=None):
        self.frames = int(crops.shape[0])
        shard = slice(rank, None, world_size)
        self.crops = crops[shard]                                     # [N',1,m,m] device
        self.gt_uvd = np.asarray(gt_uvd, dtype=np.float64)[shard]     # [N',J,3]
        self.com_uvd = np.asarray(com_uvd, dtype=np.float64)[shard]   # [N',3]
        self.box = np.asarray(box, dtype=np.int64)[shard]             # [N']
        self.half_cube_mm = np.broadcast_to(np.asarray(half_cube_mm, dtype=np.float64),
                                            (self.frames,))[shard]
        self.is_left = None if is_left is None else np.asarray(is_left, dtype=bool)[shard]  # [N']
        self.cam = cam
        self.batch_size = batch_size

    def batches(self) -> Iterator[EvalBatch]:
        for start in range(0, len(self.box), self.batch_size):
            part = slice(start, start + self.batch_size)
            crop = CropBatch(image=None, com_uvd=self.com_uvd[part], box=self.box[part],
                             half_cube_mm=self.half_cube_mm[part])
            yield EvalBatch(crops=self.crops[part], gt_uvd=self.gt_uvd[part], crop=crop,
                            cams=self.cam, is_left=None if self.is_left is None else self.is_left[part])


# ----------------------------------------------------------------------------- assembly

@dataclass
class TrainingData:
    train: object            # SyntheticTrainStream | DiskTrainStream
    validation: object       # TensorEvalSet | DiskEvalSet
    keypoint_names: tuple
    half_cube_mm: float


def dataset_joints(dataset: str) -> tuple[tuple, float]:
    """(keypoint names, half cube mm) a model for this dataset predicts / is trained with."""
    from .. import keypoints
    from ..camera import HALF_CUBE_MM
    return keypoints.order(dataset), HALF_CUBE_MM[dataset]


def build_data(config, ctx, seeds: dict) -> TrainingData:
    """The training stream and validation set of config.dataset for this rank.
    seeds: {'train': this rank's data seed, 'validation': the validation set's seed}."""
    input_size = _input_size(config)
    if config.dataset == "synthetic":
        return _synthetic_data(config, ctx, seeds, input_size)
    return _disk_data(config, ctx, input_size)


def _input_size(config) -> int:
    from ..model.config import SRNetConfig
    return SRNetConfig.from_dict(dict(config.model)).input_size


def _synthetic_data(config, ctx, seeds, input_size) -> TrainingData:
    from tqdm import tqdm

    from ..data.synthetic import training_batch

    synthetic_config = config.synthetic_config()
    _, half_cube = dataset_joints("synthetic")
    train = SyntheticTrainStream(config.batch_size, config.steps_per_epoch, ctx.device,
                                 seeds["train"], half_cube, synthetic_config, input_size)
    # The fixed validation set: generated once, same seed on every rank, own generator.
    generator = torch.Generator(device=ctx.device)
    generator.manual_seed(seeds["validation"])
    parts = []
    with tqdm(total=config.val_frames, desc="generating validation set", unit="frame",
              file=sys.stderr, disable=not ctx.is_main, leave=False) as bar:
        for start in range(0, config.val_frames, config.batch_size):
            count = min(config.batch_size, config.val_frames - start)
            crops, _, info = training_batch(count, generator, synthetic_config, ctx.device,
                                            half_cube, input_size)
            parts.append((crops, info["uvd"].double().cpu().numpy(),
                          info["com_uvd"].double().cpu().numpy(), info["box"].cpu().numpy(),
                          torch.as_tensor(info["is_left"]).cpu().numpy().astype(bool)))
            bar.update(count)
    crops, gt_uvd, com_uvd, box, is_left = (torch.cat([p[0] for p in parts]),
                                            *(np.concatenate([p[i] for p in parts]) for i in (1, 2, 3, 4)))
    validation = TensorEvalSet(crops, gt_uvd, com_uvd, box, half_cube,
                               synthetic_config.intrinsics(), config.batch_size, ctx.rank,
                               ctx.world_size, is_left=is_left)
    return TrainingData(train, validation, *dataset_joints("synthetic"))


def open_reader(dataset: str, root, split: str, fold=None):
    """The dataset's reader; a missing root is a clear error, a wrong layout is the
    reader's own (it names the file it expected and the layout)."""
    from pathlib import Path

    from ..data.readers import open_dataset

    if not root:
        raise ValueError(f"dataset {dataset!r} needs its folder: --root DIR")
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise FileNotFoundError(f"{dataset} dataset folder {root_path} does not exist (--root)")
    kwargs = {"test_subject": int(fold)} if dataset == "msra" else {}
    if dataset == "msra" and fold is None:
        raise ValueError("msra needs --fold 0..8 (the left-out test subject) or --fold all")
    return open_dataset(dataset, root_path, split, **kwargs)


def _disk_data(config, ctx, input_size) -> TrainingData:
    names, _ = dataset_joints(config.dataset)
    reader = open_reader(config.dataset, config.root, "train", config.fold)
    if config.val_split == "held_out":
        train_ids, val_ids = held_out_split(len(reader), config.val_frames)
        val_reader = reader
    else:
        val_reader = open_reader(config.dataset, config.root, config.val_split, config.fold)
        if not getattr(val_reader, "labelled", True):
            raise ValueError(f"{config.dataset} split {config.val_split!r} has no public labels; "
                             "it cannot be a validation set (use val_split: held_out)")
        train_ids, val_ids = np.arange(len(reader)), np.arange(min(len(val_reader), config.val_frames))
    train_set = CropDataset(reader, train_ids, input_size, names)
    val_set = CropDataset(val_reader, val_ids, input_size, names)
    train = DiskTrainStream(train_set, config.batch_size, ctx.device, config.seed, ctx.rank,
                            ctx.world_size, config.num_workers)
    validation = DiskEvalSet(val_set, config.batch_size, ctx.device, ctx.rank, ctx.world_size,
                             config.num_workers)
    return TrainingData(train, validation, *dataset_joints(config.dataset))
