"""Data pipeline: one preprocessing implementation for training, evaluation and the robot.

depth.py     decode depth images / sensor_msgs/Image payloads to float32 mm (0 = invalid)
localise.py  HandLocaliser: find the hand's centre of mass in a full scene
crop.py      srnet.md crop + normalisation (numpy and batched torch), label normalise/recover
augment.py   torch augmentation of normalised crops and labels (rotation, scale, shift)
readers/     NYU, ICVL, MSRA, HANDS2017 and loose-frame readers; open_dataset registry
show.py      `hand-pose show`: PNG grids of samples with the skeleton
bench.py     preprocessing benchmarks (CPU per-frame, GPU training crops)
sample.py    Sample: what every reader yields
"""
