"""Hyperparameter scans on Optuna: grid, random and Bayesian search over any config field."""

from hepdl.scan.runner import run_scan, run_worker
from hepdl.scan.table import scan_rows

__all__ = ["run_scan", "run_worker", "scan_rows"]
