"""Hyperparameter scans on Optuna: grid, random and Bayesian search over any config field."""

import warnings

from hepdl.scans.runner import run_scan, run_worker
from hepdl.scans.table import scan_rows

# Optuna imports tqdm.auto, which in a notebook without ipywidgets warns that its progress bars
# cannot draw; hepdl shows none of Optuna's progress bars.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

__all__ = ["run_scan", "run_worker", "scan_rows"]
