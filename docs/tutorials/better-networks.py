# %% [markdown]
# # Training better networks (seeds/002)
#
# seeds/002, "How to train better networks", gives five practical tips: ① preprocess the data,
# ② initialize the network well, ③ optimize the training procedure (learning rate, decay,
# momentum, Adam), ④ regularize, ⑤ tune the hyperparameters. Each is a config field in hepdl;
# this notebook tries each and reads the effect.
#
# Preprocessing is shown on physics features with very different scales (the leptons and
# missing momentum of the SUSY sample of seeds/004, generated with Pythia 8); the rest on
# scikit-learn's handwritten digits, which train in seconds.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import hepdl

work = Path(tempfile.mkdtemp(prefix="hepdl-better-"))


def compare(runs):
    """The validation loss of each run against the epoch (pyplot shows it below the cell)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in runs.items():
        ax.plot(run.history["epoch"], run.history["val_loss"], marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="validation loss", yscale="log")
    ax.legend(fontsize="small")


def table(rows):
    """A dict of rows (name -> {column: value}) as a DataFrame, numbers rounded."""
    return pd.DataFrame.from_dict(rows, orient="index").round(4)


# %% [markdown]
# ## ① Preprocessing
#
# Chargino pairs against WW, both to two leptons and missing momentum: 8 measured quantities
# (lepton pT, η, φ, missing ET and its φ) and 10 derived from them (Baldi et al.). Momenta and
# masses are hundreds of GeV, angles are of order one.

# %%
# !hepdl --quiet data make susy --events 2500 --out {work}/susy.h5 --workers 2 --seed 4

# %%
momenta = ["lepton1_pt", "lepton2_pt", "met", "met_rel", "axial_met", "m_r", "m_tr_2", "mt2",
           "s_r", "m_delta_r"]
others = ["lepton1_eta", "lepton1_phi", "lepton2_eta", "lepton2_phi", "met_phi", "r",
          "dphi_r_b", "cos_theta_r1"]
source = {"kind": "hdf5", "path": str(work / "susy.h5"), "label": "label",
          "class_names": ["WW", "chargino"], "inputs": {"momenta": momenta, "others": others}}
import h5py  # noqa: E402

with h5py.File(work / "susy.h5") as f:
    print(pd.DataFrame({k: f[k][:] for k in momenta[:4] + others[:2]}).describe().round(2))

# %% [markdown]
# The rule of thumb of seeds/002 is mean 0 and width 1 per feature, $(p - \bar p)/\sigma(p)$,
# fitted on the training split; for steep spectra a logarithm first ($E' = \log E$); for
# correlated quantities one common scale, so their ratios survive (`shared_scale`). Each chain
# is fitted on the training events only and saved inside the model.

# %%
chains = {
    "none": {},
    "standardize": {"momenta": ["standardize"], "others": ["standardize"]},
    "log, then standardize": {"momenta": ["log1p", "standardize"], "others": ["standardize"]},
    "one scale for the momenta": {"momenta": [{"shared_scale": {"groups": [list(range(10))]}}],
                                  "others": ["standardize"]},
}
susy = {}
for name, preprocess in chains.items():
    config = hepdl.load_config({
        "name": "susy", "runs_dir": str(work / "runs"), "seed": 1,
        "data": {"source": source, "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "preprocess": preprocess,
        "model": {"width": 64, "depth": 3, "activation": "tanh", "init": "glorot_normal"},
        "train": {"epochs": 15, "batch_size": 64, "lr": 1e-3, "threads": 2},
        "evaluate": {"plots": False}})
    susy[name] = hepdl.train(config, console=None)
table({name: {"test AUC": run.metrics["auc"]["chargino"],
              "best val loss": run.history["val_loss"].min()} for name, run in susy.items()})

# %%
compare(susy)

# %% [markdown]
# Raw GeV into a tanh network saturates its first layer: the network learns slowly and ends
# worst. Any of the three rescalings fixes that; at 1,500 training events their differences
# are within the spread between seeds.

# %%
assert susy["none"].metrics["auc"]["chargino"] < susy["standardize"].metrics["auc"]["chargino"]

# %% [markdown]
# ## ② Initialization
#
# For one neuron $\langle y^2\rangle = n_\mathrm{in}\langle w^2\rangle\langle x^2\rangle$: weights
# drawn from N(0, 1) multiply the variance by the number of inputs at every layer. Glorot
# ($\sigma = \sqrt{2/(n_\mathrm{in}+n_\mathrm{out})}$, for tanh) and He ($\sigma =
# \sqrt{2/n_\mathrm{in}}$, for ReLU, which zeroes half of its inputs) keep it. hepdl measures
# the spread of every layer's output while it trains (`health.csv`).


# %%
def digits(name, **fields):
    base = {"name": name, "runs_dir": str(work / "runs"), "seed": 1,
            "data": {"source": {"kind": "digits"}},
            "preprocess": {"pixels": ["standardize"]},
            "model": {"width": 128, "depth": 2},
            "train": {"epochs": 12, "batch_size": 64, "lr": 1e-3, "threads": 2},
            "evaluate": {"plots": False}}
    return hepdl.load_config(base, **fields)


inits = {init: hepdl.train(digits(f"init-{init}", model__init=init, model__depth=6,
                                  model__width=64, train__epochs=6), console=None)
         for init in ["normal", "he_normal"]}
spread = {}
for init, run in inits.items():
    health = pd.read_csv(run.path / "health.csv")
    first = health[(health["epoch"] == 1) & health["activation_std"].notna()]
    spread[init] = first.set_index("layer")["activation_std"]
print(pd.DataFrame(spread).round(3))
for init, run in inits.items():
    print(f"{init:10s} accuracy {run.metrics['accuracy']:.3f}  findings {run.metrics['findings']}")

# %%
assert spread["normal"].iloc[-1] > 100 * spread["he_normal"].iloc[-1]

# %% [markdown]
# `hepdl study init CONFIG` runs every initialization of a config and draws the output
# variance against depth ([training diagnostics](../training.md)).
#
# ## ③ The training procedure: decay of the learning rate
#
# Time-based $l_0/(1+kt)$, step $l_0\lambda^{\lfloor t/\tau\rfloor}$, exponential
# $l_0 e^{-t/\tau}$, cosine, or on a plateau of the validation loss: `train.schedule`. The
# optimizers of seeds/002 (SGD, momentum, Nesterov, Adagrad, RMSprop, Adam, AdamW, AMSGrad,
# Adadelta) are `train.optimizer`.

# %%
schedules = {
    "constant": "constant",
    "step (τ=4, λ=0.5)": {"name": "step", "tau": 4, "gamma": 0.5},
    "exponential (τ=5)": {"name": "exponential", "tau": 5},
    "cosine": "cosine",
}
decay = {name: hepdl.train(digits(f"schedule-{i}", train__schedule=schedule, train__lr=3e-3,
                                  train__epochs=15), console=None)
         for i, (name, schedule) in enumerate(schedules.items())}
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, run in decay.items():
    axes[0].plot(run.history["epoch"], run.history["lr"], label=name)
    axes[1].plot(run.history["epoch"], run.history["val_loss"], label=name)
axes[0].set(xlabel="epoch", ylabel="learning rate")
axes[1].set(xlabel="epoch", ylabel="validation loss", yscale="log")
axes[0].legend(fontsize="small")
table({name: {"best val loss": run.history["val_loss"].min(),
              "test accuracy": run.metrics["accuracy"]} for name, run in decay.items()})

# %% [markdown]
# ## ④ Regularization
#
# A deeper network (4 × 256) on the digits overfits within a few epochs. Dropout and batch
# normalization modify the network, `train.l2` the loss, early stopping the training.

# %%
variants = {
    "none": {},
    "dropout 0.3": {"model__dropout": 0.3},
    "batch norm": {"model__batch_norm": True},
    "L2 1e-4": {"train__l2": 1e-4},
    "early stopping": {"train__early_stopping": {"patience": 3}},
}
regularized = {name: hepdl.train(digits(f"reg-{i}", model__depth=4, model__width=256,
                                        train__epochs=20, **fields), console=None)
               for i, (name, fields) in enumerate(variants.items())}
compare(regularized)

# %%
table({name: {"best val loss": run.history["val_loss"].min(), "epochs": len(run.history),
              "test accuracy": run.metrics["accuracy"],
              "finding": "; ".join(f.split(":")[0] for f in run.metrics["findings"])}
       for name, run in regularized.items()})

# %% [markdown]
# ## ⑤ Hyperparameter tuning
#
# A scan draws the learning rate, the width and the dropout with Optuna's Bayesian sampler
# (TPE): after 4 trials drawn at random (`startup_trials`), each trial is drawn where the
# trials so far promise most. Grid and random sampling are `scan.sampler: grid | random`. Many
# workers, on one machine or a cluster, share one study
# ([scans on a cluster](../howto/scan-cluster.md)).

# %%
tuning = digits("tuning", train__epochs=8)
tuning = hepdl.load_config(tuning.model_dump(mode="json"), scan={
    "sampler": "tpe", "trials": 10, "startup_trials": 4, "objective": "accuracy",
    "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
              "model.width": {"type": "categorical", "choices": [32, 64, 128, 256]},
              "model.dropout": {"type": "float", "low": 0.0, "high": 0.5}}})
scan = hepdl.scan(tuning, console=None)
scan.table()[["trial", "train.lr", "model.width", "model.dropout", "objective", "status"]].round(4)

# %%
best = scan.best_run()
print(f"best: lr {best.config.train.lr:.2e}, width {best.config.model.width}, "
      f"dropout {best.config.model.dropout:.2f}; test accuracy {best.metrics['accuracy']:.3f}")
