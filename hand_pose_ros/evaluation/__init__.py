"""Evaluation with the community protocol: result files, metrics and success curves, plots,
and the `hand-pose eval` command (cli.py). Plots import matplotlib only when called."""
from .metrics import joint_errors_mm, score, success_rate, thresholds_mm
from .result_files import ResultFileError, read_result_file, write_result_file

__all__ = ["joint_errors_mm", "score", "success_rate", "thresholds_mm",
           "ResultFileError", "read_result_file", "write_result_file"]
