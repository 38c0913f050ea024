"""Settings trained more than once: over seeds, or over the folds of a k-fold split.

A study grid or a scan space may hold *replicate* fields (:data:`REPLICATES`): they change
which events train and test a network, or where its training starts, never the network. The
trials of one setting (every other value the same) are then read together: the mean of each AUC
with its spread, and two settings compared by the difference of their scores paired on the same
replicate (the same folds, the same seeds), which cancels the noise the replicates share.

The error of a mean paired difference when the replicates draw their events from one sample
(folds, split seeds): their training sets overlap, so the scatter of the J differences
understates the error (Bengio & Grandvalet, JMLR 5 (2004) 1089). hepdl takes the corrected
resampled t-test of Nadeau & Bengio, Machine Learning 52 (2003) 239:
var = (1/J + n_test/n_train) s^2 for the mean of J paired differences of sample variance s^2,
read as Student's t with J - 1 degrees of freedom. They derived it for random subsamples;
Bouckaert & Frank (PAKDD 2004) use it for (repeated) k-fold. n_train leaves the validation events
out, which errs on the safe side. Replicates that train and test on the same events (seeds under
a fixed ``data.split.seed``) take s^2 / J, and within one split they count as one resample.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REPLICATES = {"seed": "seed", "data.split.fold": "fold", "data.split.seed": "split seed"}
"""Fields that repeat a setting without changing it (-> their name in a line of text): the seed,
the k-fold test fold and the seed of the split's permutation."""


def replicate_fields(paths) -> list[str]:
    """The replicate fields among dotted ``paths`` (a grid's or a search space's), in order."""
    return [path for path in paths if path in REPLICATES]


@dataclass(frozen=True)
class Design:
    """The replicates of a study or scan: their columns, those that move the events between
    training and test, n_test / n_train for the correction, and how a resample is named."""

    columns: tuple[str, ...] = ()
    moving: tuple[str, ...] = ()
    test_over_train: float = 0.0
    unit: str = ""  #: what one resample is: "fold", "fold and seed", "seed"
    averaged: str = ""  #: replicates averaged within a resample: "seed"

    def pairs(self, n: int) -> str:
        """``5 paired runs of the same fold``, ``3 ... (seeds averaged in each)``."""
        text = f"{n} paired {'run' if n == 1 else 'runs'}"
        if self.unit:
            text += f" of the same {self.unit}"
        return text + (f" ({self.averaged}s averaged in each)" if self.averaged else "")


def design(split, varied: list[str], columns: dict[str, str] | None = None) -> Design:
    """The :class:`Design` of replicate fields ``varied`` (dotted paths, in the order of the grid)
    for runs with data split ``split`` (a :class:`~hepdl.config.SplitConfig`); ``columns`` maps
    paths to the table's column names."""
    columns = columns or {}
    # split_indices draws the split from split.seed (the base's, or the grid's), else from the
    # run's seed
    seed_draws_split = split.seed is None and "data.split.seed" not in varied
    moving = [p for p in varied if p in ("data.split.fold", "data.split.seed")
              or (p == "seed" and seed_draws_split)] if split.files is None else []
    ratio = 0.0
    if moving and split.folds:
        ratio = (1 / split.folds) / (1 - 1 / split.folds - split.val)
    elif moving:
        ratio = (1 - split.train - split.val) / split.train  # split_indices tests the rest
    unit = " and ".join(REPLICATES[p] for p in (moving or varied))
    averaged = " and ".join(REPLICATES[p] for p in varied if moving and p not in moving)
    return Design(tuple(columns.get(p, p) for p in varied),
                  tuple(columns.get(p, p) for p in moving), ratio, unit, averaged)


@dataclass
class Setting:
    """One setting of a study or scan and its trials (one per replicate, or more)."""

    labels: dict[str, Any]  #: the setting's values as the table shows them, replicates left out
    raw: dict[str, Any]  #: the same values as configured (two chains may describe alike)
    rows: list[dict[str, Any]] = field(default_factory=list)  #: its trials' table rows
    scores: dict[tuple, list[float]] = field(default_factory=dict)  #: replicate -> scores
    replicates: list[tuple] = field(default_factory=list)  #: each row's replicate

    @property
    def name(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.labels.items()) or "(base)"

    def mean(self) -> float | None:
        """The mean score of its scored trials."""
        values = [v for scores in self.scores.values() for v in scores]
        return float(np.mean(values)) if values else None


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _scored(row: dict[str, Any], score: str) -> bool:
    value = row.get(score)
    return isinstance(value, int | float) and math.isfinite(value)


def group_settings(rows: list[dict[str, Any]], labels: list[str], replicates: Design,
                   score: str, raw: list[dict[str, Any]] | None = None) -> list[Setting]:
    """The rows of one setting together, in order of first appearance.

    ``labels`` are the columns of every grid or space value, ``replicates.columns`` those of
    them that only repeat a setting; ``raw`` holds each row's values as configured (default the
    row's own), by which settings are told apart: two values that a table describes alike are
    shown as ``'log' #1`` and ``'log' #2``. A trial's score (column ``score``) counts when it is
    a finite number.
    """
    settings: dict[str, Setting] = {}
    for i, row in enumerate(rows):
        values = raw[i] if raw is not None else row
        own = [k for k in labels if k not in replicates.columns and k in row]
        key = _key({k: values.get(k) for k in own})
        setting = settings.setdefault(key, Setting({k: row[k] for k in own},
                                                   {k: values.get(k) for k in own}))
        replicate = tuple(_key(values.get(k)) for k in replicates.columns)
        setting.rows.append(row)
        setting.replicates.append(replicate)
        if _scored(row, score):
            setting.scores.setdefault(replicate, []).append(float(row[score]))
    out = list(settings.values())
    for column in {k for s in out for k in s.labels}:
        seen: dict[str, list[str]] = {}  # label -> the raw values shown by it
        for setting in out:
            if column in setting.labels:
                raws = seen.setdefault(str(setting.labels[column]), [])
                if _key(setting.raw[column]) not in raws:
                    raws.append(_key(setting.raw[column]))
        for setting in out:
            raws = seen.get(str(setting.labels.get(column)), [])
            if len(raws) > 1:
                number = raws.index(_key(setting.raw[column])) + 1
                setting.labels[column] = f"{setting.labels[column]} #{number}"
    return out


@dataclass
class Difference:
    """Setting a minus setting b, paired on the replicates both have a score for."""

    mean: float | None  # None without a common replicate
    error: float | None  # None below two resamples; 0 when every pair differs alike
    pairs: int  # J: independent resamples (replicates on the same events count once)

    @property
    def t(self) -> float | None:
        """Nadeau & Bengio's corrected t statistic (J - 1 degrees of freedom); None without
        an error or with no spread."""
        if not self.error:
            return None
        return abs(self.mean) / self.error

    @property
    def p_value(self) -> float | None:
        """Two-sided p-value of no difference, from Student's t with J - 1 degrees of freedom."""
        from scipy.stats import t

        return None if self.t is None else float(2 * t.sf(self.t, self.pairs - 1))

    @property
    def sigma(self) -> float | None:
        """The p-value as Gaussian standard deviations (two-sided), as physicists quote it."""
        from scipy.stats import norm

        if self.p_value is None:
            return None
        sigma = float(norm.isf(self.p_value / 2))
        return sigma if math.isfinite(sigma) else None

    def text(self, replicates: Design) -> str:
        """``+0.0152 ± 0.0039 (2.3 sigma: t = 3.9, 4 dof; 5 paired runs of the same fold)``."""
        if self.mean is None:
            return f"(no common {replicates.unit or 'run'})"
        pairs = replicates.pairs(self.pairs)
        if self.error is None:
            return f"{self.mean:+.4f} ({pairs})"
        if self.error == 0:
            return f"{self.mean:+.4f} ± 0 (no spread over {pairs})"
        dof = f"t = {self.t:.1f}, {self.pairs - 1} dof" if self.t < 1e4 else \
            f"t = {self.t:.3g}, {self.pairs - 1} dof"
        if self.sigma is None:  # beyond what a double holds
            return f"{self.mean:+.4f} ± {self.error:.4f} ({dof}; {pairs})"
        return f"{self.mean:+.4f} ± {self.error:.4f} ({self.sigma:.1f} sigma: {dof}; {pairs})"


def paired_difference(a: Setting, b: Setting, replicates: Design = Design()) -> Difference:
    """The mean of a's score minus b's over their common replicates, with its error (the module
    docstring).

    Replicates that share their events (seeds of one fold under a fixed split seed) are
    averaged into one resample; several trials of one replicate (a sampler that drew it twice)
    count by their mean.
    """
    common = a.scores.keys() & b.scores.keys()
    if not common:
        return Difference(None, None, 0)
    moving = [replicates.columns.index(c) for c in replicates.moving]
    resamples: dict[tuple, list[float]] = {}
    for key in sorted(common):
        split = tuple(key[i] for i in moving) if moving else key
        resamples.setdefault(split, []).append(np.mean(a.scores[key]) - np.mean(b.scores[key]))
    d = np.array([np.mean(v) for v in resamples.values()])
    if len(d) < 2:
        return Difference(float(d.mean()), None, len(d))
    error = float(np.sqrt((1 / len(d) + replicates.test_over_train) * d.var(ddof=1)))
    if error <= 1e-12 * max(1.0, abs(float(d.mean()))):  # alike up to rounding
        error = 0.0
    return Difference(float(d.mean()), error, len(d))


def _complete(settings: list[Setting]) -> list[bool]:
    """Whether each setting is scored on every replicate that any setting's trials have."""
    every = {key for s in settings for key in s.replicates}
    return [every <= s.scores.keys() for s in settings]


def _ranked(settings: list[Setting], maximize: bool) -> list[Setting]:
    """Settings best first: those scored on every replicate first, by their mean; then the
    others, by the mean of what they have (a setting that failed a fold never ranks above a
    complete one on the folds it kept, though it may beat it there: its ``vs_best``); unscored
    settings last."""
    sign = -1 if maximize else 1
    complete = dict(zip(map(id, settings), _complete(settings), strict=True))

    def order(setting: Setting):
        mean = setting.mean()
        return (mean is None, not complete[id(setting)], sign * (mean or 0))

    return sorted(settings, key=order)


def setting_rows(settings: list[Setting], score: str, replicates: Design = Design(),
                 maximize: bool = True, score_name: str | None = None) -> list[dict[str, Any]]:
    """One row per setting, best first (those scored on every replicate ahead of the others:
    :func:`_ranked`).

    Each AUC and the score (column ``score``, shown as ``score_name``) as the mean over its
    scored trials and their sample standard deviation (``..._sd``, from 2 trials on); ``runs``,
    those trials; how all its trials ended; and the score's difference to the best setting
    paired over the replicates both have (``vs_best``, ``vs_best_err`` and ``vs_best_sigma``:
    :func:`paired_difference`).
    """
    name = score_name or score
    rows = {}
    for setting in settings:
        scored = [r for r in setting.rows if _scored(r, score)]
        row: dict[str, Any] = {"model": setting.name, "runs": len(scored)}
        columns = [k for k in dict.fromkeys(k for r in setting.rows for k in r)
                   if k.endswith("_AUC")]
        for column, shown in [*((c, c) for c in columns), (score, name)]:
            values = [r[column] for r in scored if r.get(column) is not None]
            row[shown] = float(np.mean(values)) if values else None
            row[f"{shown}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        row.update(vs_best=None, vs_best_err=None, vs_best_sigma=None)
        row.update(setting.labels)
        epochs = [r["epochs"] for r in scored if r.get("epochs") is not None]
        row["epochs"] = float(np.mean(epochs)) if epochs else None
        ended = Counter(r.get("status") for r in setting.rows)
        row["status"] = ", ".join(f"{n} {status}" for status, n in ended.items())
        row["finding"] = "; ".join(f"trial {r['trial']}: {r['finding']}" for r in setting.rows
                                   if r.get("finding"))
        rows[id(setting)] = row
    order = _ranked(settings, maximize)
    if order and order[0].scores:
        for setting in order[1:]:
            diff = paired_difference(setting, order[0], replicates)
            rows[id(setting)].update(vs_best=diff.mean, vs_best_err=diff.error,
                                     vs_best_sigma=diff.sigma)
    return [rows[id(s)] for s in order]


def cell(row: dict[str, Any], key: str) -> str:
    """One cell of a row by setting as text: a mean ± its spread (to 4 decimals), ``vs_best``
    signed with its error and significance, epochs to 1 decimal, other values as given."""
    value = row.get(key)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key == "vs_best":
        error, sigma = row.get("vs_best_err"), row.get("vs_best_sigma")
        text = f"{value:+.4f}"
        if error == 0:
            return text + " ± 0 (no spread)"
        text += f" ± {error:.4f}" if error is not None else ""
        return text + (f" ({sigma:.1f} sigma)" if sigma is not None else "")
    if key == "epochs":
        return f"{value:.1f}"
    if f"{key}_sd" in row:  # a mean (an AUC, the metric)
        spread = row[f"{key}_sd"]
        return f"{value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")
    return f"{value:g}" if isinstance(value, float) else str(value)  # a drawn value: 3e-05


def with_spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by setting for reading, every value as text (:func:`cell`), the ``_sd`` and
    ``vs_best_...`` columns folded into the cells they qualify; every row with every column."""
    hidden = ("_sd", "vs_best_err", "vs_best_sigma")
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if not k.endswith(hidden)]
    return [{key: cell(row, key) for key in keys} for row in rows]


FAILED = ("failed", "fail", "collapsed")
"""How a trial ends without a score (studies: failed, collapsed; Optuna: fail); running,
pruned or interrupted trials are not failures."""


def winner_lines(settings: list[Setting], dimensions: dict[str, int], metric: str,
                 replicates: Design = Design(), maximize: bool = True) -> list[str]:
    """For each dimension (a label column -> how many values the grid gives it): the value
    whose best setting ranks first (:func:`_ranked`) and its margin over the runner-up value's
    best setting; a value that was given but trained alone; values whose every trial failed.

    With replicates the margin is :func:`paired_difference` with its error and significance,
    and only settings scored on every replicate compete (values with none are named as left
    out); when no setting is, all do, and of two settings the pairs decide the order.
    """
    # the settings scored on every replicate compete; the others only when none is
    complete = [s for s, whole in zip(settings, _complete(settings), strict=True) if whole]
    order = _ranked(complete if any(s.scores for s in complete) else settings, maximize)
    sign = 1 if maximize else -1
    lines = []
    for column, given in dimensions.items():
        best: dict[str, Setting] = {}  # each value's best setting, by the configured value
        for setting in order:
            if setting.scores and column in setting.labels:
                best.setdefault(_key(setting.raw[column]), setting)
        ranked = list(best.values())
        if len(ranked) >= 2:
            a, b = ranked[0], ranked[1]
            diff = paired_difference(a, b, replicates)
            if diff.mean is not None and sign * diff.mean < 0:  # on different folds: pairs rule
                a, b = b, a
            top, second = a.labels[column], b.labels[column]
            if not replicates.columns:
                lines.append(f"{column}: {top} won with best {metric} {a.mean():.4f}, "
                             f"{a.mean() - b.mean():+.4f} over {second} ({b.mean():.4f})")
            else:
                scores = [x for v in a.scores.values() for x in v]
                runs = (f"mean of {len(scores)} runs, sd {np.std(scores, ddof=1):.4f}"
                        if len(scores) > 1 else "one run")
                margin = paired_difference(a, b, replicates).text(replicates)
                lines.append(f"{column}: {top} won with {metric} {a.mean():.4f} ({runs}), "
                             f"{margin} over {second} ({b.mean():.4f})")
        competing = {id(s) for s in order}
        partial = sorted({str(s.labels[column]) for s in settings if column in s.labels
                          and s.scores and id(s) not in competing}
                         - {str(s.labels[column]) for s in ranked})
        if len(ranked) == 1 and (given > 1 or partial):
            only = f"scored on every {replicates.unit}" if partial else "trained"
            lines.append(f"{column}: only {ranked[0].labels[column]} {only} "
                         f"({ranked[0].mean():.4f})")
        failed = sorted({str(s.labels[column]) for s in settings if column in s.labels
                         and not s.scores and all(r.get("status") in FAILED for r in s.rows)})
        if failed:
            lines.append(f"{column}: every trial with {', '.join(failed)} collapsed or failed")
        if partial:
            lines.append(f"{column}: {', '.join(partial)} left out: not scored on every "
                         f"{replicates.unit}")
    return lines
