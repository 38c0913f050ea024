"""Evaluation the way physicists read results: metrics, plots and the HTML report."""

from hepdl.evaluate.evaluation import evaluate_run
from hepdl.evaluate.metrics import compute_metrics
from hepdl.evaluate.predict import Predictions, predict
from hepdl.evaluate.report import write_report

__all__ = ["Predictions", "compute_metrics", "evaluate_run", "predict", "write_report"]
