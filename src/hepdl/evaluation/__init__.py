"""Evaluation the way physicists read results: metrics, plots and the HTML report."""

from hepdl.evaluation.evaluate import evaluate_run
from hepdl.evaluation.metrics import compute_metrics
from hepdl.evaluation.predictions import Predictions, predict
from hepdl.evaluation.report import write_report

__all__ = ["Predictions", "compute_metrics", "evaluate_run", "predict", "write_report"]
