"""What went wrong in a training, in plain words, from its ``history.csv`` and ``health.csv``.

The symptoms are the ones seeds/001, 002 and 004 teach: exploding and vanishing gradients,
dead ReLU units (an input scale too large for the initialization), saturated tanh/sigmoid
units, and overfitting (validation loss rising while training loss falls). Thresholds are
stated beside each rule; a healthy run gives no finding.
"""

from __future__ import annotations

import math

EXPLODING = 100.0  # gradient norm this many times its first-epoch value
VANISHING = 1e-3  # first layer's gradient norm below this fraction of the last layer's
GROWING = 100.0  # last hidden layer's output spread this many times the first's
DEAD = 0.5  # fraction of a ReLU layer's units never positive on a watched batch
SATURATED = 0.5  # fraction of a tanh/sigmoid layer's outputs at the flat ends
OVERFIT_EPOCHS = 3  # validation loss above its minimum for this many epochs, training falling


def _layers(health: list[dict], column: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for row in health:
        value = row.get(column)
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            continue
        out.setdefault(row["layer"], []).append((int(row["epoch"]), float(value)))
    return out


def exploding(health: list[dict]) -> str | None:
    for layer, series in _layers(health, "grad_norm").items():
        first = series[0][1]
        for epoch, value in series[1:]:
            if not math.isfinite(value) or (first > 0 and value > EXPLODING * first):
                ratio = value / first if first > 0 and math.isfinite(value) else math.inf
                return (f"exploding gradients from epoch {epoch} ({layer} gradient norm "
                        f"x{ratio:.0e} of epoch {series[0][0]}): lower train.lr (hepdl lr-find)")
    return None


def _last_over_first(health: list[dict], column: str, min_layers: int):
    """In the first epoch: the last layer's value over the first layer's, and that epoch."""
    layers = list(_layers(health, column).values())
    if len(layers) < min_layers:
        return None, None
    first, last = layers[0][0], layers[-1][0]
    return (last[1] / first[1] if first[1] > 0 else math.inf), first[0]


def vanishing(health: list[dict]) -> str | None:
    ratio, epoch = _last_over_first(health, "grad_norm", 3)
    if ratio is not None and ratio > 1 / VANISHING:
        return (f"vanishing gradients: the first layer's gradient norm is {1 / ratio:.0e} of "
                f"the last layer's in epoch {epoch}; saturating activations through depth: "
                "try ReLU with he init, or batch norm")
    return None


def growing_activations(health: list[dict]) -> str | None:
    ratio, epoch = _last_over_first(health, "activation_std", 2)
    if ratio is not None and ratio > GROWING:
        return (f"activations grow through depth: the last hidden layer's output spread is "
                f"x{ratio:.0e} of the first's in epoch {epoch}; the weights are too large "
                "for the depth (seeds/002: use glorot or he init, not N(0, 1))")
    return None


def _units(health: list[dict], column: str, threshold: float, what: str, advice: str):
    out = []
    for layer, series in _layers(health, column).items():
        epoch, fraction = series[-1]
        if fraction >= threshold:
            out.append(f"{fraction:.0%} of {what} {layer} {advice.format(epoch=epoch)}")
    return out


def dead_units(health: list[dict]) -> list[str]:
    return _units(health, "dead_fraction", DEAD, "units in", "dead at epoch {epoch}: input "
                  "scale too large for this initialization; try the nonlinear normalization "
                  "or a lower learning rate")


def saturated(health: list[dict]) -> list[str]:
    return _units(health, "saturated_fraction", SATURATED, "the outputs of", "saturated at "
                  "epoch {epoch}: gradients vanish there; rescale the inputs or use glorot init")


def overfitting(history: list[dict], early_stopped: bool) -> str | None:
    rows = [r for r in history if r.get("val_loss") not in (None, "")]
    if len(rows) < OVERFIT_EPOCHS + 2:
        return None
    val = [float(r["val_loss"]) for r in rows]
    train = [float(r["train_loss"]) for r in rows]
    best = min(range(len(val)), key=val.__getitem__)
    after = range(best + 1, len(val))
    if (len(after) >= OVERFIT_EPOCHS and all(val[i] > val[best] for i in after)
            and val[-1] > val[best] * 1.02 and train[-1] < train[best]):
        kept = "early stopping kept" if early_stopped else "the best was"
        return (f"overfitting from epoch {int(rows[best + 1]['epoch'])}: validation loss rising "
                f"while training loss falls; {kept} epoch {int(rows[best]['epoch'])}")
    return None


def training_findings(history: list[dict], health: list[dict],
                      early_stopped: bool = False) -> list[str]:
    """Every finding that applies, most severe first."""
    found = [exploding(health), vanishing(health), growing_activations(health),
             *dead_units(health), *saturated(health),
             overfitting(history, early_stopped)]
    return [f for f in found if f]
