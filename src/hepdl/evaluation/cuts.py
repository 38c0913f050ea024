"""A cut-based (rectangular cuts) identification baseline, and paired bootstrap comparisons.

:class:`CutBasedID` finds one threshold per feature (``x < cut`` or ``x > cut``) that rejects the
most background at a required signal efficiency: what TMVA's rectangular-cut method
(``MethodCuts``) does in spirit. It is written here because scikit-learn has no rectangular-cut
optimizer (its trees split recursively, they do not place one window per feature).

:func:`cut_roc` turns the working points of several fits into a ROC curve and its area, and
:func:`bootstrap_difference` gives the statistical error of the difference between two
classifiers on the same test events (a paired bootstrap), with :func:`auc` and
:func:`rejection_at` as ready statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

DIRECTIONS = ("below", "above")
_CELLS_PER_CHUNK = 4_000_000  # candidates x events evaluated at once in the random search


def _check_directions(directions: Mapping[str, str]) -> None:
    if not directions:
        raise ValueError("CutBasedID needs at least one feature in directions")
    for name, direction in directions.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"feature {name!r}: direction must be 'below' or 'above', "
                             f"not {direction!r}")


def _cut_passing(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cuts ``c`` such that ``values < c`` passes the ``counts`` smallest of the sorted, finite
    ``values`` (and any value tied with the last of them), placed midway in the gap to the next
    larger value so that the cut does not sit on an event."""
    counts = np.asarray(counts)
    out = np.empty(counts.shape)
    none = counts <= 0
    out[none] = values[0] if len(values) else 0.0
    k = counts[~none]
    low = values[np.minimum(k, len(values)) - 1]
    above = np.searchsorted(values, low, side="right")
    high = values[np.minimum(above, len(values) - 1)]
    middle = 0.5 * (low + high)
    ok = (above < len(values)) & (middle > low)
    out[~none] = np.where(ok, middle, np.nextafter(low, np.inf))
    return out


def _tightest(sig: np.ndarray, bkg: np.ndarray, need: int) -> float:
    """The cut on ``x < cut`` that keeps at least ``need`` of the ``sig`` values with the least
    of the ``bkg`` values (``inf`` marks failed events; returns nan if ``need`` cannot be kept).
    The cut lies midway between the last kept signal value and the next value of either class.
    """
    if len(sig) < need:
        return math.nan
    last = float(np.partition(sig, need - 1)[need - 1])
    if not np.isfinite(last):
        return math.nan
    larger = np.concatenate([sig[sig > last], bkg[(bkg > last) & np.isfinite(bkg)]])
    if len(larger) == 0:
        return float(np.nextafter(last, np.inf))
    middle = 0.5 * (last + float(larger.min()))
    return middle if middle > last else float(np.nextafter(last, np.inf))


def _pass_count(z: np.ndarray, cuts: np.ndarray) -> int:
    return int(np.all(z < cuts, axis=1).sum())


class CutBasedID:
    """Rectangular cuts: an event passes if every feature is on the signal side of its cut.

    ``fit`` minimizes the background efficiency at a required signal efficiency, as TMVA's
    rectangular-cut method does in spirit; it is hand-written because scikit-learn has no
    rectangular-cut optimizer. Two stages:

    1. a vectorized random search: each candidate places feature ``j``'s cut at the signal
       quantile ``efficiency ** w_j`` with ``w`` from a flat Dirichlet, so that for independent
       features the candidates spread over every way of sharing the inefficiency; the best
       candidate that keeps at least ``efficiency`` of the signal is kept;
    2. refinement, repeated until a pass improves nothing (at most ``max_passes``): coordinate
       descent (each cut in turn moved to the best threshold with the other cuts fixed, an exact
       scan over all signal values) and then, for every pair of features, a scan of the first
       cut over ~200 signal quantiles with the second cut re-tightened to the target. The pair
       moves trade efficiency between features, which single-cut moves cannot once the signal
       efficiency sits at the target.

    Events with NaN in a feature fail its cut.

    Parameters
    ----------
    directions : dict of str to str
        For each feature, ``"below"`` (an event passes if ``value < cut``) or ``"above"``
        (passes if ``value > cut``).
    n_candidates : int
        Cut sets tried by the random search.
    max_passes : int
        Most refinement passes.

    Raises
    ------
    ValueError
        If a direction is neither ``"below"`` nor ``"above"``.

    Example
    -------
    >>> ident = CutBasedID({"isolation": "below", "shower_width": "below"})
    >>> ident.fit(features, is_signal, 0.9).cuts_  # doctest: +SKIP
    {'isolation': 0.12, 'shower_width': 0.011}
    """

    n_grid = 200  # signal quantiles scanned per feature in the pair moves

    def __init__(self, directions: Mapping[str, str], *, n_candidates: int = 512,
                 max_passes: int = 5):
        _check_directions(directions)  # early, so a typo fails before any data is read
        self.directions = dict(directions)
        self.n_candidates = n_candidates
        self.max_passes = max_passes

    # --- data -----------------------------------------------------------------------------
    def _oriented(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """(events, features) array in which every cut reads ``z < c``; NaN becomes +inf."""
        missing = [name for name in self.directions if name not in features]
        if missing:
            raise ValueError(f"feature {missing[0]!r} is missing; got {sorted(features)}")
        columns = []
        for name, direction in self.directions.items():
            x = np.asarray(features[name], dtype=np.float64).ravel()
            columns.append(-x if direction == "above" else x)
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise ValueError(f"features have different lengths {sorted(lengths)}")
        z = np.stack(columns, 1)
        z[np.isnan(z)] = np.inf
        return z

    # --- fit ------------------------------------------------------------------------------
    def fit(self, features: Mapping[str, np.ndarray], is_signal: np.ndarray, efficiency: float,
            *, seed: int = 0) -> CutBasedID:
        """Find the cuts with the lowest background efficiency at signal efficiency
        >= ``efficiency`` on these (training) events.

        Parameters
        ----------
        features : dict of str to array
            One value per event for every feature of ``directions`` (others are ignored).
        is_signal : array of bool
            True for signal events.
        efficiency : float
            Required signal efficiency, in (0, 1].
        seed : int
            Seed of the random search.

        Returns
        -------
        CutBasedID
            ``self``, with ``cuts_``, ``signal_efficiency_`` and ``background_efficiency_`` (on
            these events).

        Raises
        ------
        ValueError
            If the efficiency is out of range or unreachable (NaN in too many signal events),
            or a class is empty.
        """
        if not 0.0 < efficiency <= 1.0:
            raise ValueError(f"efficiency must be in (0, 1], not {efficiency}")
        z = self._oriented(features)
        is_signal = np.asarray(is_signal).astype(bool).ravel()
        if len(is_signal) != len(z):
            raise ValueError(f"is_signal has {len(is_signal)} events, the features {len(z)}")
        zs, zb = z[is_signal], z[~is_signal]
        n_sig, n_bkg = len(zs), len(zb)
        if n_sig == 0 or n_bkg == 0:
            raise ValueError(f"need signal and background events, got {n_sig} and {n_bkg}")
        need = max(1, math.ceil(efficiency * n_sig - 1e-9))  # signal events that must pass
        sorted_sig = [np.sort(zs[:, j][np.isfinite(zs[:, j])]) for j in range(z.shape[1])]
        if min(len(s) for s in sorted_sig) == 0:
            raise ValueError("a feature is NaN for every signal event")

        cuts, bkg_count = self._random_search(zs, zb, sorted_sig, efficiency, need, seed)
        for _ in range(self.max_passes):
            before = bkg_count
            cuts, bkg_count = self._coordinate_pass(zs, zb, cuts, bkg_count, need)
            cuts, bkg_count = self._pair_pass(zs, zb, sorted_sig, cuts, bkg_count, need,
                                              efficiency)
            if bkg_count >= before:
                break

        self.cuts_ = {name: float(-c if direction == "above" else c)
                      for (name, direction), c in zip(self.directions.items(), cuts, strict=True)}
        passed = self.passes(features)
        self.signal_efficiency_ = float(passed[is_signal].mean())
        self.background_efficiency_ = float(passed[~is_signal].mean())
        return self

    def _random_search(self, zs, zb, sorted_sig, efficiency, need, seed):
        n_sig, n_feat = len(zs), zs.shape[1]
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.ones(n_feat), size=self.n_candidates)
        # the equal split, and no cut at all (feasible whenever anything is)
        weights = np.vstack([np.full(n_feat, 1.0 / n_feat), np.zeros(n_feat), weights])
        counts = np.ceil(efficiency ** weights * n_sig - 1e-9).astype(int)
        candidates = np.stack([_cut_passing(sorted_sig[j], counts[:, j])
                               for j in range(n_feat)], 1)
        sig = np.empty(len(candidates), dtype=np.int64)
        bkg = np.empty(len(candidates), dtype=np.int64)
        chunk = max(1, _CELLS_PER_CHUNK // (len(zs) + len(zb)))
        for start in range(0, len(candidates), chunk):
            block = candidates[start:start + chunk]
            for rows, out in ((zs, sig), (zb, bkg)):
                passed = rows[:, 0] < block[:, :1]  # (candidates, events), one feature at a time
                for j in range(1, n_feat):
                    passed &= rows[:, j] < block[:, j:j + 1]
                out[start:start + chunk] = passed.sum(1)
        feasible = sig >= need
        if not feasible.any():
            raise ValueError(f"signal efficiency {efficiency} is out of reach: only "
                             f"{sig.max() / n_sig:.4f} of the signal is finite in every feature")
        best = np.flatnonzero(feasible)[np.argmin(bkg[feasible])]
        return candidates[best].copy(), int(bkg[best])

    @staticmethod
    def _coordinate_pass(zs, zb, cuts, bkg_count, need):
        for j in range(zs.shape[1]):
            others = np.delete(np.arange(zs.shape[1]), j)
            keep_s = np.all(zs[:, others] < cuts[others], axis=1)
            keep_b = np.all(zb[:, others] < cuts[others], axis=1)
            sig_j, bkg_j = zs[keep_s, j], zb[keep_b, j]
            cut = _tightest(sig_j[np.isfinite(sig_j)], bkg_j, need)
            if math.isnan(cut):
                continue
            count = int((bkg_j < cut).sum())
            if count < bkg_count:
                cuts[j], bkg_count = cut, count
        return cuts, bkg_count

    def _pair_pass(self, zs, zb, sorted_sig, cuts, bkg_count, need, efficiency):
        n_sig, n_feat = len(zs), zs.shape[1]
        levels = np.linspace(efficiency, 1.0, self.n_grid)
        for j in range(n_feat):
            grid = _cut_passing(sorted_sig[j], np.ceil(levels * n_sig - 1e-9).astype(int))
            grid = np.unique(np.append(grid, cuts[j]))
            for k in range(j + 1, n_feat):
                rest = np.delete(np.arange(n_feat), [j, k])
                keep_s = np.all(zs[:, rest] < cuts[rest], axis=1)
                keep_b = np.all(zb[:, rest] < cuts[rest], axis=1)
                sj, sk = zs[keep_s, j], zs[keep_s, k]
                order = np.argsort(sj, kind="stable")
                sj, sk = sj[order], sk[order]
                prefix = np.searchsorted(sj, grid, side="left")  # signal passing z_j < grid
                # the need-th smallest z_k among them: cut k just above it (inf: out of reach)
                last_k = np.full(len(grid), np.inf)
                for i in np.flatnonzero(prefix >= need):
                    last_k[i] = np.partition(sk[:prefix[i]], need - 1)[need - 1]
                ok = np.isfinite(last_k)
                if not ok.any():
                    continue
                bj, bk = zb[keep_b, j], zb[keep_b, k]
                counts = np.full(len(grid), np.iinfo(np.int64).max)
                idx = np.flatnonzero(ok)
                chunk = max(1, _CELLS_PER_CHUNK // max(len(bj), 1))
                for start in range(0, len(idx), chunk):
                    sel = idx[start:start + chunk]
                    counts[sel] = ((bj < grid[sel, None]) & (bk <= last_k[sel, None])).sum(1)
                best = int(np.argmin(counts))
                if counts[best] >= bkg_count:
                    continue
                inside = sj < grid[best]
                cut_k = _tightest(sk[inside][np.isfinite(sk[inside])], bk[bj < grid[best]], need)
                trial = cuts.copy()
                trial[j], trial[k] = grid[best], cut_k
                count = _pass_count(zb, trial)
                if not math.isnan(cut_k) and count < bkg_count and _pass_count(zs, trial) >= need:
                    cuts, bkg_count = trial, count
        return cuts, bkg_count

    # --- apply ----------------------------------------------------------------------------
    def passes(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean array: True for events passing every cut (NaN fails).

        Raises
        ------
        RuntimeError
            If the cuts have not been fitted.
        """
        if not hasattr(self, "cuts_"):
            raise RuntimeError("CutBasedID is not fitted; call fit() on training data first")
        passed = None
        for name, direction in self.directions.items():
            if name not in features:
                raise ValueError(f"feature {name!r} is missing; got {sorted(features)}")
            x = np.asarray(features[name], dtype=np.float64).ravel()
            side = x < self.cuts_[name] if direction == "below" else x > self.cuts_[name]
            if passed is not None and len(side) != len(passed):
                raise ValueError(f"feature {name!r} has {len(side)} events, not {len(passed)}")
            passed = side if passed is None else passed & side
        return passed


def fit_working_points(features: Mapping[str, np.ndarray], is_signal: np.ndarray,
                       efficiencies: Sequence[float], directions: Mapping[str, str],
                       seed: int = 0) -> list[CutBasedID]:
    """One :class:`CutBasedID` fitted per target signal efficiency, in the order given."""
    return [CutBasedID(directions).fit(features, is_signal, eff, seed=seed)
            for eff in efficiencies]


def cut_roc(points_sig_eff: np.ndarray, points_bkg_eff: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, float]:
    """The ROC curve traced by cut-based working points (efficiencies on test data).

    The points are sorted by signal efficiency, (0, 0) and (1, 1) (no event / every event
    passes) are added, and a point dominated by another (no more signal for no less
    background) is dropped, so that the background efficiency increases with the signal
    efficiency. Consecutive points are joined by straight lines: mixing two selections at random
    reaches every point between them, so the curve is reachable and its area is a lower bound of
    what a continuum of cut sets would give.

    Parameters
    ----------
    points_sig_eff, points_bkg_eff : array
        Signal and background efficiency of each working point.

    Returns
    -------
    sig, bkg : array
        The curve, from (0, 0) to signal efficiency 1.
    auc : float
        Trapezoid area under the background rejection (1 - background efficiency) against the
        signal efficiency, the physicist's reading; it equals the usual ROC AUC (area under true
        positive rate against false positive rate), so it compares directly with
        :func:`auc` of a continuous score.
    """
    sig = np.clip(np.append(np.asarray(points_sig_eff, dtype=float), 1.0), 0.0, 1.0)
    bkg = np.clip(np.append(np.asarray(points_bkg_eff, dtype=float), 1.0), 0.0, 1.0)
    if sig.shape != bkg.shape:
        raise ValueError(f"{len(sig) - 1} signal but {len(bkg) - 1} background efficiencies")
    order = np.lexsort((-bkg, sig))  # by signal efficiency, the worse of equal ones first
    sig, bkg = sig[order], bkg[order]
    later_min = np.minimum.accumulate(bkg[::-1])[::-1]  # cumulative minimum from the right
    keep = np.append(bkg[:-1] < later_min[1:], True)  # else a later point dominates
    keep &= sig > 0.0  # (0, 0) dominates any point at zero signal efficiency
    sig, bkg = np.append(0.0, sig[keep]), np.append(0.0, bkg[keep])
    area = float(np.sum(np.diff(sig) * (2.0 - bkg[1:] - bkg[:-1]) / 2.0))
    return sig, bkg, area


# --- statistics for bootstrap_difference ---------------------------------------------------
Statistic = Callable[[np.ndarray, np.ndarray], float]


def auc(is_signal: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of a score (scikit-learn's ``roc_auc_score``); of a pass/fail array, the AUC of
    its single working point."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(is_signal).astype(bool), score))


def rejection_at(efficiency: float) -> Statistic:
    """A statistic: background rejection (1 / background efficiency) at signal efficiency
    ``efficiency``.

    For a score, events pass if ``score >= threshold`` with the threshold at the
    ``1 - efficiency`` quantile of the signal scores (numpy's linear interpolation); for a
    boolean pass/fail array (a cut-based working point), the background efficiency is its
    pass fraction. Returns ``inf`` if no background event passes.
    """
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency must be in (0, 1], not {efficiency}")

    def rejection(is_signal: np.ndarray, score: np.ndarray) -> float:
        is_signal = np.asarray(is_signal).astype(bool)
        score = np.asarray(score)
        if score.dtype == bool:
            passed = score
        else:
            passed = score >= np.quantile(score[is_signal], 1.0 - efficiency)
        bkg = float(passed[~is_signal].mean())
        return 1.0 / bkg if bkg > 0 else math.inf

    rejection.__name__ = f"rejection_at_{efficiency}"
    return rejection


def bootstrap_difference(is_signal: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *,
                         statistic: Statistic, n_boot: int = 200, seed: int = 0) -> dict:
    """Difference of a statistic between two classifiers on the same test events, with its
    error from a paired bootstrap (both scores on the same resampled events, so the events'
    common fluctuation cancels).

    Parameters
    ----------
    is_signal : array of bool
        Truth of the test events.
    score_a, score_b : array
        Scores, or boolean pass/fail arrays (a cut-based working point), one per event.
    statistic : callable
        ``statistic(is_signal, score) -> float``, e.g. :func:`auc` or :func:`rejection_at`.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``a``, ``b`` (the statistic on the full sample), ``difference`` (a - b), ``error`` (standard
        deviation of the bootstrap differences), ``significance`` (difference / error; 0 if both
        are 0, +-inf if only the error is) and ``n_boot`` (the resamples used). Resamples whose
        difference is not finite (a rejection is inf when no background passes) are left out
        of the error; ``error`` is nan if fewer than two are left.
    """
    is_signal = np.asarray(is_signal).astype(bool)
    score_a, score_b = np.asarray(score_a), np.asarray(score_b)
    n = len(is_signal)
    if len(score_a) != n or len(score_b) != n:
        raise ValueError(f"{n} events but scores of length {len(score_a)} and {len(score_b)}")
    a, b = float(statistic(is_signal, score_a)), float(statistic(is_signal, score_b))
    rng = np.random.default_rng(seed)
    differences = np.empty(n_boot)
    for i in range(n_boot):  # one resample at a time: (n_boot, n) indices may not fit in memory
        index = rng.integers(0, n, n)
        y = is_signal[index]
        differences[i] = statistic(y, score_a[index]) - statistic(y, score_b[index])
    finite = differences[np.isfinite(differences)]
    error = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    difference = a - b  # nan if both are inf
    if error > 0:
        significance = difference / error
    elif difference == 0:
        significance = 0.0
    else:
        significance = math.copysign(math.inf, difference) if error == 0 else math.nan
    return {"a": a, "b": b, "difference": difference, "error": error,
            "significance": significance, "n_boot": int(len(finite))}
