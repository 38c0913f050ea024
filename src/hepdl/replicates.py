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


@dataclass(frozen=True)
class Design:
    """The replicates of a study or scan: their columns, those that move the events between
    training and test, n_test / n_train for the correction, and how a pair is named."""

    columns: tuple[str, ...] = ()
    moving: tuple[str, ...] = ()
    test_over_train: float = 0.0
    noun: str = "paired runs"


def design(split, varied: list[str], columns: dict[str, str] | None = None) -> Design:
    """The :class:`Design` of replicate fields ``varied`` (dotted paths, in the order of the grid)
    for runs with data split ``split`` (a :class:`~hepdl.config.SplitConfig`); ``columns`` maps
    paths to the table's column names."""
    columns = columns or {}
    # split_indices draws the split from split.seed, else from the run's seed
    moving = [p for p in varied if p in ("data.split.fold", "data.split.seed")
              or (p == "seed" and split.seed is None)] if split.files is None else []
    ratio = 0.0
    if moving and split.folds:
        ratio = (1 / split.folds) / (1 - 1 / split.folds - split.val)
    elif moving:
        ratio = (1 - split.train - split.val) / split.train  # split_indices tests the rest
    noun = ("paired runs of the same " + " and ".join(REPLICATES[p] for p in varied)
            if varied else "paired runs")
    return Design(tuple(columns.get(p, p) for p in varied),
                  tuple(columns.get(p, p) for p in moving), ratio, noun)


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

    def mean(self, among: set | None = None) -> float | None:
        """The mean score of its trials (of those on the replicates ``among`` only)."""
        values = [v for key, scores in self.scores.items() if among is None or key in among
                  for v in scores]
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
    row's own), by which settings are told apart. A trial's score (column ``score``) counts when
    it is a finite number.
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
    return list(settings.values())


@dataclass
class Difference:
    """Setting a minus setting b, paired on the replicates both have a score for."""

    mean: float | None  # None without a common replicate
    error: float | None  # None below two resamples
    pairs: int  # J: independent resamples (replicates on the same events count once)

    @property
    def t(self) -> float | None:
        """Nadeau & Bengio's corrected t statistic (J - 1 degrees of freedom)."""
        if self.error is None:
            return None
        return math.inf if self.error == 0 else abs(self.mean) / self.error

    @property
    def p_value(self) -> float | None:
        """Two-sided p-value of no difference, from Student's t with J - 1 degrees of freedom."""
        from scipy.stats import t

        return None if self.t is None else float(2 * t.sf(self.t, self.pairs - 1))

    @property
    def sigma(self) -> float | None:
        """The p-value as Gaussian standard deviations (two-sided), as physicists quote it."""
        from scipy.stats import norm

        return None if self.p_value is None else float(norm.isf(self.p_value / 2))

    def text(self, noun: str) -> str:
        """``+0.0152 ± 0.0039 (2.3 sigma: t = 3.9, 4 dof; 5 paired runs of the same fold)``."""
        if self.mean is None:
            return f"(no {noun.replace('paired runs', 'pair')})"
        if self.error is None:
            return f"{self.mean:+.4f} ({self.pairs} {noun})"
        if self.error == 0:
            return f"{self.mean:+.4f} ± 0 (no spread over {self.pairs} {noun})"
        return (f"{self.mean:+.4f} ± {self.error:.4f} ({self.sigma:.1f} sigma: t = {self.t:.1f}, "
                f"{self.pairs - 1} dof; {self.pairs} {noun})")


def paired_difference(a: Setting, b: Setting, replicates: Design = Design(),
                      among: set | None = None) -> Difference:
    """The mean of a's score minus b's over their common replicates (those ``among`` only),
    with its error (the module docstring).

    Replicates that share their events (seeds of one fold under a fixed split seed) are
    averaged into one resample; several trials of one replicate (a sampler that drew it twice)
    count by their mean.
    """
    common = a.scores.keys() & b.scores.keys()
    if among is not None:
        common &= among
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
    return Difference(float(d.mean()), error, len(d))


def _common(settings: list[Setting]) -> set | None:
    """The replicates every scored setting has (None if they share none): settings are ranked
    and compared on those, so a failed fold never ranks one setting on easier folds."""
    keys = [set(s.scores) for s in settings if s.scores]
    common = set.intersection(*keys) if keys else set()
    return common or None


def setting_rows(settings: list[Setting], score: str, replicates: Design = Design(),
                 maximize: bool = True, score_name: str | None = None) -> list[dict[str, Any]]:
    """One row per setting, best first.

    Each AUC and the score (column ``score``, shown as ``score_name``) as the mean over the
    trials and their sample standard deviation (``..._sd``, from 2 trials on); ``runs``, the
    trials in the means; how all its trials ended; and the score's difference to the best
    setting paired over the replicates (``vs_best``, ``vs_best_err`` and ``vs_best_sigma``:
    :func:`paired_difference`). The means take the replicates that every scored setting has,
    so that all settings are read on the same folds (a fold failed in one setting leaves every
    setting's mean); with none in common, each its own.
    """
    if not settings:
        return []
    name = score_name or score
    common = _common(settings)
    out = []
    for setting in settings:
        scored = [r for r, key in zip(setting.rows, setting.replicates, strict=True)
                  if _scored(r, score) and (common is None or key in common)]
        row: dict[str, Any] = {"model": setting.name, "runs": len(scored)}
        columns = [k for k in dict.fromkeys(k for r in scored for k in r) if k.endswith("_AUC")]
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
        out.append(row)
    sign = -1 if maximize else 1
    ranks = [s.mean(common) for s in settings]
    order = sorted(range(len(out)), key=lambda i: (ranks[i] is None, sign * (ranks[i] or 0)))
    best = settings[order[0]]
    for i in order[1:]:
        diff = paired_difference(settings[i], best, replicates, common)
        out[i].update(vs_best=diff.mean, vs_best_err=diff.error, vs_best_sigma=diff.sigma)
    return [out[i] for i in order]


def cell(row: dict[str, Any], key: str) -> str:
    """One cell of a row by setting as text: a mean ± its spread, ``vs_best`` signed with its
    error and significance, other numbers to 4 decimals (epochs to 1)."""
    value = row.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, float):
        return str(value)
    if key == "epochs":
        return f"{value:.1f}"
    if key == "vs_best":
        error, sigma = row.get("vs_best_err"), row.get("vs_best_sigma")
        text = f"{value:+.4f}" + (f" ± {error:.4f}" if error is not None else "")
        return text + (f" ({sigma:.1f} sigma)" if sigma is not None and math.isfinite(sigma)
                       else "")
    spread = row.get(f"{key}_sd")
    return f"{value:.4f}" + (f" ± {spread:.4f}" if spread is not None else "")


def with_spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by setting for reading, every value as text (:func:`cell`), the ``_sd`` and
    ``vs_best_...`` columns folded into the cells they qualify."""
    hidden = ("_sd", "vs_best_err", "vs_best_sigma")
    return [{key: cell(row, key) for key in row if not key.endswith(hidden)} for row in rows]


def winner_lines(settings: list[Setting], dimensions: dict[str, int], metric: str,
                 replicates: Design = Design(), maximize: bool = True) -> list[str]:
    """For each dimension (a label column -> how many values the grid gives it): the value
    whose best setting has the best (mean) score and its margin over the runner-up value's best
    setting; a value that was given but trained alone; values that never scored.

    With replicates the margin is :func:`paired_difference` with its error and significance;
    settings are ranked and their means read on the replicates they all have."""
    sign = 1 if maximize else -1
    common = _common(settings)
    lines = []
    for column, given in dimensions.items():
        best: dict[str, Setting] = {}
        for setting in settings:
            if setting.mean(common) is None or column not in setting.labels:
                continue
            value = _key(setting.raw[column])
            if value not in best or sign * setting.mean(common) > sign * best[value].mean(common):
                best[value] = setting
        ranked = sorted(best.values(), key=lambda s: -sign * s.mean(common))
        if len(ranked) >= 2:
            a, b = ranked[0], ranked[1]
            top, second = a.labels[column], b.labels[column]
            first, runner_up = a.mean(common), b.mean(common)
            if not replicates.columns:
                lines.append(f"{column}: {top} won with best {metric} {first:.4f}, "
                             f"{first - runner_up:+.4f} over {second} ({runner_up:.4f})")
            else:
                scores = [x for key, v in a.scores.items() if common is None or key in common
                          for x in v]
                runs = (f"mean of {len(scores)} runs, sd {np.std(scores, ddof=1):.4f}"
                        if len(scores) > 1 else "one run")
                margin = paired_difference(a, b, replicates, common).text(replicates.noun)
                lines.append(f"{column}: {top} won with {metric} {first:.4f} ({runs}), "
                             f"{margin} over {second} ({runner_up:.4f})")
        elif ranked and given > 1:
            lines.append(f"{column}: only {ranked[0].labels[column]} trained "
                         f"({ranked[0].mean(common):.4f})")
        never = sorted({str(s.labels[column]) for s in settings if column in s.labels}
                       - {str(s.labels[column]) for s in best.values()})
        if never:
            lines.append(f"{column}: every trial with {', '.join(never)} collapsed or failed")
    return lines
