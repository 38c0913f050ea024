"""Which features does a network need? The same network and a BDT on several feature sets.

Baldi, Sadowski & Whiteson (arXiv:1402.4735, seeds/004) train a deep network and boosted
trees on the 8 low-level, the 10 high-level and all 18 features of their SUSY events and find
that the deep network on the low-level features alone does about as well as on all of them,
while the trees need the high-level ones. ``hepdl study features CONFIG`` repeats that
comparison for any config with a ``study.feature_sets`` mapping: for each set, the config's
network (its one input replaced by the set's columns) and a scikit-learn HistGradientBoosting
classifier are trained on the same training split and scored on the same test split; the table
gives each AUC with its bootstrap error, and the network minus BDT difference from a paired
bootstrap (both on the same resampled events).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hepdl.config import Config, FileSource
from hepdl.errors import ConfigError, HepdlError
from hepdl.runs import atomic_write


def _set_config(config: Config, columns: list[str]) -> Config:
    """The config with its single input replaced by ``columns``."""
    source = config.data.source
    if not isinstance(source, FileSource) or len(source.inputs) != 1:
        raise ConfigError("data.source.inputs", "a feature-set study needs a file source with "
                                                "exactly one input (its columns are replaced)")
    name = next(iter(source.inputs))
    raw = config.model_dump(mode="json")
    raw["data"]["source"]["inputs"] = {name: list(columns)}
    raw.pop("study")
    return Config.model_validate(raw)


def _bdt_scores(train, test, name: str, seed: int) -> np.ndarray:
    """A HistGradientBoosting BDT fitted on ``train``'s input ``name``: scores of ``test``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    signal = len(train.class_names) - 1
    bdt = HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, max_leaf_nodes=31,
                                         early_stopping=True, validation_fraction=0.2,
                                         random_state=seed)
    bdt.fit(train.inputs[name], train.labels == signal)
    return bdt.predict_proba(test.inputs[name])[:, 1]


def _network_scores(run: Path, test) -> np.ndarray:
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run

    scores = predict(Run.load(run).network(), test).scores
    return scores[:, scores.shape[1] - 1]


def _auc_error(is_signal: np.ndarray, score: np.ndarray, n_boot: int, seed: int) -> float:
    """Standard deviation of the AUC over bootstrap resamplings of the test events."""
    from hepdl.evaluation.cuts import auc

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(score), len(score))
        values.append(auc(is_signal[pick], score[pick]))
    return float(np.std(values))


def run_feature_study(config: Config, *, out: Path | None = None, n_boot: int = 100,
                      console=None) -> dict[str, Any]:
    """Train the network and a BDT on each feature set; write and return the AUC table."""
    from hepdl.data.dataset import load_splits
    from hepdl.evaluation.cuts import auc, bootstrap_difference
    from hepdl.study import Trial, train_or_resume

    sets = config.study.feature_sets if config.study is not None else {}
    if not sets:
        raise ConfigError("study.feature_sets", "no feature sets given (name -> list of columns)")
    out = Path(out) if out is not None else Path(config.runs_dir) / config.name
    rows = []
    for number, (name, columns) in enumerate(sets.items()):
        trial_config = _set_config(config, columns)
        if console is not None:
            console.rule(f"feature set {name} ({len(columns)} features)")
        trial = Trial(number, {"features": name}, out / f"set_{name}")
        train_or_resume(trial, trial_config, console)
        if trial.status != "completed":
            raise HepdlError(f"the network on feature set {name!r} failed: {trial.finding}")
        # one read of the splits: the network and the BDT see the very same events
        splits = load_splits(trial_config.data, trial_config.task, trial_config.seed)
        train, test = splits["train"], splits["test"]
        truth = test.labels == len(test.class_names) - 1
        network = _network_scores(trial.run, test)
        bdt = _bdt_scores(train, test, next(iter(trial_config.data.source.inputs)),
                          config.seed)
        difference = bootstrap_difference(truth, network, bdt, statistic=auc, n_boot=n_boot,
                                          seed=config.seed)
        rows.append({"features": name, "n_features": len(columns),
                     "network_auc": auc(truth, network),
                     "network_auc_error": _auc_error(truth, network, n_boot, config.seed),
                     "bdt_auc": auc(truth, bdt),
                     "bdt_auc_error": _auc_error(truth, bdt, n_boot, config.seed),
                     "network_minus_bdt": difference, "test_events": int(len(truth)),
                     "run": str(trial.run)})
    result = {"name": config.name, "rows": rows}
    write_feature_study(result, out)
    return result


def table_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| features | network AUC | BDT AUC | network - BDT |", "|---|---|---|---|"]
    for r in rows:
        d = r["network_minus_bdt"]
        lines.append(f"| {r['features']} ({r['n_features']}) | {r['network_auc']:.4f} ± "
                     f"{r['network_auc_error']:.4f} | {r['bdt_auc']:.4f} ± "
                     f"{r['bdt_auc_error']:.4f} | {d['difference']:+.4f} ± {d['error']:.4f} |")
    return "\n".join(lines) + "\n"


def write_feature_study(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "features.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / "table.md", table_markdown(result["rows"]))
