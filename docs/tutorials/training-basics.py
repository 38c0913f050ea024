# %% [markdown]
# # Training basics and what goes wrong (seeds/001)
#
# seeds/001, "Calorimeters meet MLPs", walks through what a network is (layers, activations), the
# loss it minimizes (mean squared error for a regression, with a linear output), gradient
# descent with its learning rate, stochastic gradient descent with momentum, Adam, and
# overfitting. This notebook trains each of those and reads what hepdl measured: loss curves,
# the learning-rate range test, the health of gradients and activations, and the findings it
# writes at the top of every report.
#
# The classification examples use scikit-learn's bundled 8×8 handwritten digits (1,797 images,
# no download), which train in seconds; the regression is the calorimeter energy of
# LCD-style showers.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import hepdl

work = Path(tempfile.mkdtemp(prefix="hepdl-basics-"))


def digits(name, **fields):
    """A small digits MLP (2 x 128, standardized pixels) with some fields changed. Quick runs
    write no figure files (`evaluate.plots: false`): the notebook draws what it shows."""
    base = {"name": name, "runs_dir": str(work / "runs"), "seed": 1,
            "data": {"source": {"kind": "digits"}},
            "preprocess": {"pixels": ["standardize"]},
            "model": {"width": 128, "depth": 2},
            "train": {"epochs": 12, "batch_size": 64, "lr": 1e-3, "threads": 2},
            "evaluate": {"plots": False}}
    return hepdl.load_config(base, **fields)


# %% [markdown]
# ## A network that trains
#
# Adam at the default rate, 12 epochs. `hepdl.train` prints one line per epoch and the test
# metrics, and returns the `Run`; `run.history` is one row per epoch.

# %%
adam = hepdl.train(digits("adam"))
adam.history[["epoch", "train_loss", "val_loss", "val_accuracy", "lr"]].round(4)

# %%
adam.plot_history()

# %% [markdown]
# ## Gradient descent, momentum and Adam
#
# The update of seeds/001, $\omega^{(k+1)} = \omega^{(k)} - \eta \nabla L$ on a mini-batch
# (`sgd`), with a velocity that averages past steps (`momentum`, α = 0.9), and Adam, all at
# the same learning rate. Plain SGD at 10⁻³ barely moves in 12 epochs; momentum is about ten
# times faster (its steps add up to η/(1-α)); Adam rescales each weight's step.

# %%
runs = {name: hepdl.train(digits(f"opt-{name}", train__optimizer=name), console=None)
        for name in ["sgd", "momentum", "adam"]}
fig, ax = plt.subplots(figsize=(6, 4))
for name, run in runs.items():
    ax.plot(run.history["epoch"], run.history["val_loss"], marker="o", label=name)
ax.set(xlabel="epoch", ylabel="validation loss", yscale="log")
ax.legend()
pd.DataFrame({name: {"val loss (last epoch)": run.history["val_loss"].iloc[-1],
                     "test accuracy": run.metrics["accuracy"]} for name, run in runs.items()}).T

# %%
losses = {name: run.history["val_loss"].iloc[-1] for name, run in runs.items()}
assert losses["sgd"] > losses["momentum"] > losses["adam"], losses

# %% [markdown]
# ## The learning rate
#
# "There is no universally best learning rate." The range test trains from the initial weights
# while the rate grows exponentially and finds where the loss explodes; a tenth of that rate is
# a safe choice (`hepdl lr-find CONFIG` on the command line). `train.lr: auto` runs it before
# the first epoch:

# %%
auto = hepdl.train(digits("lr-auto", train__lr="auto"), console=None)
found = auto.meta["lr_auto"]
print(f"training explodes at {found['explodes_at']:.3g}; trained at {found['lr']:.3g}; "
      f"test accuracy {auto.metrics['accuracy']:.3f}")

# %% [markdown]
# A rate far too high makes the steps overshoot. With plain SGD at η = 5 the loss blows up
# within an epoch; hepdl stops, says where and keeps the last good checkpoint. Every error
# hepdl raises for bad input or a failed run is a `hepdl.HepdlError` with a one-line message
# (on the command line: that line and exit code 2).

# %%
try:
    hepdl.train(digits("lr-too-high", train__optimizer="sgd", train__lr=5.0), console=None)
except hepdl.HepdlError as error:
    print(error)
print(hepdl.Run.load(work / "runs" / "lr-too-high").meta["status"])

# %% [markdown]
# At η = 0.5 plain SGD trains, and fast: on these easy images it reaches its best validation
# loss within a few epochs. hepdl watches the losses and the gradient norm of every layer
# (`health.csv`) and reports what it found.

# %%
fast = hepdl.train(digits("lr-high", train__optimizer="sgd", train__lr=0.5), console=None)
print(f"test accuracy {fast.metrics['accuracy']:.3f}; findings: {fast.metrics['findings']}")

# %% [markdown]
# ## Activations: vanishing gradients
#
# "In practice: not vanishing/exploding output (and gradients). Suggestion: (s/r)elu."
# A deep stack of sigmoids passes back at most a quarter of the gradient per layer, so the first
# layers stop learning; the same depth with ReLU trains.

# %%
deep = {act: hepdl.train(digits(f"deep-{act}", model__depth=8, model__width=64,
                                model__activation=act,
                                model__init="glorot_normal" if act == "sigmoid" else "he_normal",
                                train__optimizer="sgd", train__lr=0.05, train__epochs=6),
                         console=None)
        for act in ["sigmoid", "relu"]}
for act, run in deep.items():
    print(f"{act:8s} accuracy {run.metrics['accuracy']:.3f}  findings: {run.metrics['findings']}")

# %%
health = pd.read_csv(deep["sigmoid"].path / "health.csv")
first = health[health["epoch"] == 1].dropna(subset=["grad_norm"]).set_index("layer")["grad_norm"]
print("gradient norm per layer in epoch 1 (input side first):")
first.round(6)

# %%
assert any("vanishing" in f for f in deep["sigmoid"].metrics["findings"])
assert deep["relu"].metrics["accuracy"] > deep["sigmoid"].metrics["accuracy"]

# %% [markdown]
# ## Overfitting
#
# With more weights than the events can pin down, the network learns the noise of its training
# set: the training loss keeps falling while the validation loss turns up. A 2 × 256 network
# (85,000 weights for 1,258 training images) for 30 epochs; hepdl names the epoch where it
# started.

# %%
overfit = hepdl.train(digits("overfit", model__width=256, train__epochs=30), console=None)
print(overfit.metrics["findings"])
overfit.plot_history()

# %%
assert any("overfitting" in f for f in overfit.metrics["findings"])

# %% [markdown]
# The remedies of seeds/001 — a simpler network, more data, a lower rate, regularization —
# are the next tutorial's subject.
#
# ## What does that mean for calorimeters? A regression
#
# For the energy of a shower the output is one number with a linear activation, and the loss
# the mean squared error (`train.loss: mse`). The report fits the relative resolution against
# the true energy with $a/\sqrt{E} \oplus b \oplus c/E$ and draws the calibrated sum of the cells
# beside it.

# %%
# !hepdl --quiet data make calo --events 2000 --out {work}/calo.h5 --workers 2 --seed 3

# %%
def energy(norm):
    """Energy regression from ECAL and HCAL with the cells normalized by ``norm``."""
    return hepdl.load_config({
        "name": f"energy-{list(norm)[0] if isinstance(norm, dict) else norm}",
        "runs_dir": str(work / "runs"),
        "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(work / "calo.h5"),
                            "inputs": ["ecal", "hcal"], "observers": ["energy"]}},
        "preprocess": {"ecal": [norm], "hcal": [norm]},
        "model": {"width": 64, "depth": 2},
        "train": {"loss": "mse", "epochs": 20, "batch_size": 64, "threads": 2},
        "evaluate": {"resolution": {"bins": [10, 60, 150, 300, 510]}}})


regressions = {"standardize each cell": hepdl.train(energy("standardize"), console=None),
               "divide by the largest cell": hepdl.train(energy({"divide": {"by": "max"}}),
                                                         console=None)}


def resolution_row(name, fit):
    return {"estimate": name, **{f"σ/E at {e:.0f} GeV": r
                                 for e, r in zip(fit["energy"], fit["resolution"], strict=True)}}


fits = {name: {fit["label"]: fit for fit in run.metrics["resolution"]}
        for name, run in regressions.items()}
rows = [resolution_row(f"network, {name}", fit["network"]) for name, fit in fits.items()]
rows.append(resolution_row("calibrated cell sum", next(iter(fits.values()))["calibrated cell sum"]))
pd.DataFrame(rows).round(3)

# %% [markdown]
# The calibrated sum of the cells is the baseline a calorimeter physicist starts from. A
# per-cell standardization, the usual rule for features, is the wrong one here: it divides each
# cell by its own spread, so the energy is no longer a sum of the inputs and the network must
# learn the calibration of 17,000 cells from 1,400 events. One scale for all cells keeps the
# sum linear, and the same network does far better; at high energy it beats the cell sum,
# while at the lowest energies 1,400 training events are too few. How to normalize is the
# subject of seeds/000 and of [the first tutorial](normalization.py).

# %%
from IPython.display import Image  # noqa: E402

Image(filename=regressions["divide by the largest cell"].path / "plots" / "resolution.png",
      width=520)
