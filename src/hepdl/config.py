"""The configuration schema: one pydantic model per section; YAML in, YAML out.

This module is the only place a default lives. A run directory stores the resolved config
(every default filled in), so ``hepdl train RUN/config.yaml`` repeats a run.

Example
-------
>>> cfg = load_config("examples/digits.yaml", overrides=["train.lr=3e-4", "model.width=256"])
>>> cfg.model.width
256
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hepdl.errors import ConfigError


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are re-checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- data

PathSpec = str | list[str]
"""One path, a glob, or a list of them; the files are read in order and concatenated."""


class DigitsSource(Section):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no download).

    Inputs: ``pixels`` (N, 64), or (N, 8, 8) images with ``images: true``; values 0-16.
    Labels: the digit.
    """

    kind: Literal["digits"] = Field(description="Source kind: scikit-learn's bundled digits.")
    images: bool = Field(default=False, description="Pixels as 8x8 images (for a CNN).")


class FileSource(Section):
    """Arrays read from files: each model input is a key, or a list of columns stacked (N, k)."""

    path: PathSpec = Field(description="File, glob or list of files; concatenated in order.")
    inputs: dict[str, str | list[str]] = Field(
        description="Model input name -> key (an array of any shape) or list of columns (N, k)."
    )
    label: str | None = Field(
        default=None, description="Key or column of the label (class index or name; a float target "
        "for regression). None only for prediction files."
    )
    observers: dict[str, str] = Field(
        default_factory=dict,
        description="Name -> key of per-event quantities kept beside predictions (energy, pt).",
    )
    class_names: list[str] | None = Field(
        default=None, description="Class names in label-index order; default: the sorted labels."
    )
    select: dict[str, list[tuple[float | None, float | None]]] = Field(
        default_factory=dict,
        description="Key -> closed ranges [low, high] (null: open end); an event is kept when "
        "each key's value lies in one of its ranges: {temperature: [[null, 1.75], [2.75, null]]}.",
    )

    @field_validator("inputs")
    @classmethod
    def _some_inputs(cls, value: dict) -> dict:
        if not value:
            raise ValueError("at least one input is required")
        return value

    def for_file(self, path: str | Path) -> FileSource:
        """This source's layout (keys, classes) read from another file: a run's data applied to
        a file given at evaluation or prediction."""
        return self.model_copy(update={"path": str(path)})

    @property
    def input_keys(self) -> list[str]:
        """Every key the model inputs read, in order, each once."""
        keys = [k for spec in self.inputs.values() for k in ([spec] if isinstance(spec, str)
                                                              else spec)]
        return list(dict.fromkeys(keys))


class NpzSource(FileSource):
    """NumPy ``.npz`` archives; keys are array names."""

    kind: Literal["npz"] = Field(description="Source kind: NumPy .npz archives.")


class Hdf5Source(FileSource):
    """HDF5 files read with h5py; keys are dataset paths such as ``ECAL`` or ``Event/energy``."""

    kind: Literal["hdf5"] = Field(description="Source kind: HDF5 files.")


class TableSource(FileSource):
    """Parquet or CSV tables (by suffix: ``.parquet``, ``.pq``, ``.csv``, ``.csv.gz`` ...); keys
    are column names."""

    kind: Literal["table"] = Field(description="Source kind: Parquet or CSV tables.")
    columns: list[str] | None = Field(
        default=None, description="Names of the columns of a CSV file without a header row, in "
        "order (the UCI SUSY and HIGGS files); null: the file's first row names them.",
    )

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"column names must be unique, got {value}")
        return value

    def for_file(self, path: str | Path) -> TableSource:
        """As :meth:`FileSource.for_file`; the names of a header-less CSV's columns go with a
        CSV file only (its Parquet rewrite, ``hepdl data convert``, names its own)."""
        from hepdl.data.readers import is_csv

        columns = self.columns if is_csv(Path(path)) else None
        return self.model_copy(update={"path": str(path), "columns": columns})


class RootSource(FileSource):
    """A flat ROOT TTree read with uproot; keys are branch names."""

    kind: Literal["root"] = Field(description="Source kind: ROOT TTrees.")
    tree: str = Field(description="Name of the TTree in each file.")


LcdLayout = Literal["v1", "v2", "v3", "v4", "merged"]
LcdInput = Literal["ecal", "hcal"]
LcdObserver = Literal["energy", "px", "py", "pz", "pdgID"]


class LcdSource(Section):
    """The LCD (CLIC) calorimeter images: ECAL (N, 25, 25, 25) and HCAL (N, 5, 5, 60) per event.

    Layouts (REFERENCES.md): ``v1`` one file per particle (``EleEscan_1_2.h5``), keys ``ECAL``,
    ``HCAL``, ``target`` (N, 1, 5); ``v2``/``v3`` the same keys plus ``pdgID``; ``v4`` nested
    groups ``ECAL/ECAL``, ``HCAL/HCAL``, ``Event/energy`` ... ``Event/pdgID``; ``merged`` all
    particles in one file with the class in ``index`` (or ``OneHot``).

    The class of an event: v1, the key of ``files`` or the file-name prefix before ``Escan``;
    v2-v4, |pdgID| (11 Ele, 22 Gamma, 111 Pi0, 211 ChPi); merged, ``index`` named by
    ``class_names``.
    """

    kind: Literal["lcd"] = Field(description="Source kind: LCD calorimeter images.")
    layout: LcdLayout = Field(description="Key layout of the files: v1, v2, v3, v4 or merged.")
    files: PathSpec | dict[str, PathSpec] = Field(
        description="Files, globs or lists, read in order; or class name -> files (v1: the class "
        "of those events; other layouts: only grouping). A plain v1 path takes the class from the "
        "file name prefix before 'Escan' (EleEscan_1_2.h5 -> Ele)."
    )
    target_columns: list[str] = Field(
        default_factory=lambda: ["energy", "px", "py", "pz", "pdgID"],
        description="Names of the columns of 'target' (N, 1, k), in order (the order differs "
        "between dataset versions); columns beyond the list are ignored. Not used by v4.",
    )
    class_names: list[str] | None = Field(
        default=None, description="Class names in label-index order. merged: the names of index "
        "0, 1, ... (default Ele, Gamma, Pi0, ChPi); other layouts: the order (and the allowed "
        "set) of the classes found (default Ele, Gamma, Pi0, ChPi, then other v1 names sorted)."
    )
    inputs: list[LcdInput] = Field(
        default_factory=lambda: ["ecal", "hcal"], description="Calorimeters handed to the model."
    )
    observers: list[LcdObserver] = Field(
        default_factory=lambda: ["energy"],
        description="Per-event truth kept beside predictions (from 'target', or Event/ in v4).",
    )
    scalar_inputs: list[LcdObserver] = Field(
        default_factory=list, description="Per-event scalars (from 'target', or Event/ in v4) "
        "handed to the model as inputs of their own, shape (N, 1): e.g. [energy].",
    )

    @field_validator("files")
    @classmethod
    def _some_files(cls, value: PathSpec | dict[str, PathSpec]) -> PathSpec | dict[str, PathSpec]:
        if not value:
            raise ValueError("at least one file is required")
        return value

    @field_validator("inputs", "observers", "target_columns", "class_names", "scalar_inputs")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"names must be unique, got {value}")
        return value

    @field_validator("inputs")
    @classmethod
    def _some_inputs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one of 'ecal', 'hcal' is required")
        return value

    @model_validator(mode="after")
    def _observers_in_target(self) -> LcdSource:
        if self.layout != "v4":
            wanted = [*self.observers, *self.scalar_inputs]
            missing = [name for name in wanted if name not in self.target_columns]
            if missing:
                raise ValueError(f"observer {missing[0]!r} is not one of the target_columns "
                                 f"{self.target_columns}")
        return self


Source = Annotated[
    DigitsSource | NpzSource | Hdf5Source | TableSource | RootSource | LcdSource,
    Field(discriminator="kind"),
]

STREAMING_KINDS = ("hdf5", "lcd", "table", "root")

CSV_NOT_STREAMED = ("in_memory: false streams Parquet tables (.parquet, .pq) by row group; a "
                    "CSV file is read whole: rewrite it as Parquet with `hepdl data convert`, or "
                    "use in_memory: true")


class SplitConfig(Section):
    """How events are split: by fractions or by k-fold (a permutation seeded by ``seed``, else
    the run's), or by separate files.

    With ``folds: K`` the seeded permutation of the events is cut into K equal folds: fold
    ``fold`` is the test split, ``val`` of all events comes from the others and the rest trains
    (``train`` and ``test`` are not used). K runs with ``fold`` = 0 ... K-1 test every event
    once, each on a network that never saw it: the "k-folding" analyses use to evaluate on all
    their events.
    """

    train: float = Field(
        default=0.7, gt=0, lt=1,
        description="Fraction of the events for training (not used with folds: the rest).")
    val: float = Field(
        default=0.15, ge=0, lt=1,
        description="Fraction of all events for validation (early stopping, learning-rate "
                    "plateaus); with folds, taken from outside the test fold.")
    test: float = Field(
        default=0.15, gt=0, lt=1,
        description="Fraction for the test metrics and plots (not used with folds: one fold).")
    files: dict[Literal["train", "val", "test"], PathSpec] | None = Field(
        default=None, description="Separate files per split, replacing the source's path."
    )
    folds: int | None = Field(
        default=None, ge=2,
        description="k-fold: cut the events into this many folds, one of them the test split.")
    fold: int = Field(default=0, ge=0, description="With folds: which fold is the test split.")
    seed: int | None = Field(
        default=None, ge=0,
        description="Seed of the split's permutation; default the run's seed. Folds trained "
                    "from different seeds keep one split: give each run its own seed and "
                    "this one the same.")

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.folds is not None:
            if self.files is not None:
                raise ValueError("split.folds and split.files exclude each other")
            if self.fold >= self.folds:
                raise ValueError(f"split.fold must be below split.folds ({self.folds}), "
                                 f"got {self.fold}")
            if self.val >= 1 - 1 / self.folds:
                raise ValueError(f"split.val ({self.val}) leaves no training events beside "
                                 f"1 of {self.folds} folds for the test")
            return self
        if self.fold:
            raise ValueError("split.fold needs split.folds")
        if self.files is None and abs(self.train + self.val + self.test - 1) > 1e-6:
            raise ValueError(
                f"split fractions must sum to 1, got {self.train} + {self.val} + {self.test}"
            )
        if self.files is not None and not {"train", "test"} <= set(self.files):
            raise ValueError("split.files needs at least 'train' and 'test'")
        return self


class DataConfig(Section):
    """The events: where they come from, how they are split, whether they fit in memory."""

    source: Source = Field(description="Where the events come from; the kind picks the reader.")
    split: SplitConfig = Field(
        default_factory=SplitConfig, description="Train / validation / test split.")
    nonfinite: Literal["error", "drop"] = Field(
        default="error", description="NaN/Inf in inputs: stop with an error, or drop those events."
    )
    in_memory: bool = Field(
        default=True, description="false: data larger than memory; HDF5, Parquet and ROOT files "
        "(source kind hdf5, lcd, table, root) are read chunk by chunk in a background thread.",
    )
    shuffle: bool = Field(
        default=True, description="Draw a new order of the training events each epoch; false "
        "keeps file order, the same batches every epoch (to compare runs batch by batch, e.g. "
        "data-parallel ranks in memory against one process).",
    )
    shuffle_buffer_mb: int = Field(
        default=64, ge=1, description="in_memory: false: MiB of events, whole chunks (row "
        "groups, clusters) drawn across all files, shuffled together for training.",
    )

    def not_streamable(self) -> str | None:
        """Why these events cannot be read chunk by chunk (None: they may; a CSV file behind a
        table's glob is found when the files are listed)."""
        if self.source.kind not in STREAMING_KINDS:
            rewrite = ("rewrite it as HDF5 with `hepdl data convert`, or "
                       if self.source.kind == "npz" else "")
            return (f"in_memory: false streams HDF5, Parquet and ROOT files; source kind "
                    f"{self.source.kind!r} is read whole ({rewrite}use in_memory: true)")
        if self.source.kind == "table":
            from hepdl.data.readers import PARQUET_SUFFIXES

            specs = [self.source.path, *(self.split.files or {}).values()]
            patterns = [p for spec in specs for p in ([spec] if isinstance(spec, str) else spec)]
            if any(Path(str(p)).suffix.lower() not in ("", *PARQUET_SUFFIXES) for p in patterns):
                return CSV_NOT_STREAMED
        if getattr(self.source, "scalar_inputs", None):
            return ("scalar_inputs need in_memory: true (the streaming loader reads the "
                    "calorimeter images only)")
        if getattr(self.source, "select", None):
            return ("select needs in_memory: true (streamed events are counted from the file "
                    "headers before they are read)")
        if self.nonfinite == "drop":
            return ("nonfinite: drop needs in_memory: true (streamed events are counted from the "
                    "file headers before they are read); use nonfinite: error")
        return None

    @model_validator(mode="after")
    def _streamable(self) -> DataConfig:
        if not self.in_memory and (reason := self.not_streamable()):
            raise ValueError(reason)
        return self


# --------------------------------------------------------------------------- preprocessing

TransformSpec = str | dict[str, dict[str, Any]]
"""A transform by name (``standardize``) or ``{name: {option: value}}``."""


# --------------------------------------------------------------------------- model

Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "tanh", "sigmoid"]
Init = Literal["glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "normal", "default"]


class MLPConfig(Section):
    """A multi-layer perceptron on the flattened, concatenated inputs (CaloDNN's classifier)."""

    name: Literal["mlp"] = Field(default="mlp", description="Model kind: mlp.")
    width: int = Field(default=128, ge=1, description="Units of each hidden layer.")
    depth: int = Field(default=2, ge=0, description="Number of hidden layers.")
    activation: Activation = Field(default="relu", description="Activation of the hidden layers.")
    init: Init = Field(
        default="he_normal",
        description="Glorot for tanh-like, He for ReLU-like activations (seeds/002); normal is the "
        "naive N(0,1); default keeps PyTorch's.",
    )
    dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout probability after each hidden layer.")
    batch_norm: bool = Field(
        default=False, description="Batch normalization before each activation.")


class CNNConfig(Section):
    """A convolutional network on one image input (2D towers, or the 3D ECAL volume), the other
    inputs merged before the dense head (seeds/003's baseline: channels [64, 64, 64], dims 2)."""

    name: Literal["cnn"] = Field(description="Model kind: cnn.")
    image_input: str | None = Field(
        default=None, description="The input convolved; default: the first with 2+ axes.")
    dims: Literal[2, 3] = Field(default=3, description="2D or 3D convolutions.")
    channels: list[int] = Field(default_factory=lambda: [8, 16], min_length=1,
                                description="Filters of each [Conv, BatchNorm?, act, Pool] block.")
    kernel_size: int = Field(
        default=3, ge=1, description="Convolution kernel size along each image axis.")
    pool: Literal["max", "avg"] = Field(
        default="max", description="Pooling after each convolution block.")
    batch_norm: bool = Field(
        default=True, description="Batch normalization after each convolution.")
    global_pool: Literal["flatten", "max", "avg", "max_avg"] = Field(
        default="flatten", description="How conv features reach the head; max_avg concatenates "
        "global max and average pooling (seeds/003's variant).")
    dense_width: int = Field(
        default=128, ge=1, description="Units of each hidden layer of the dense head.")
    dense_depth: int = Field(default=1, ge=0, description="Hidden layers of the dense head.")
    activation: Activation = Field(
        default="relu", description="Activation of the convolutions and the head.")
    init: Init = Field(default="he_normal", description="Weight initialization (see the MLP's).")
    dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout probability in the dense head.")


ModelConfig = Annotated[MLPConfig | CNNConfig, Field(discriminator="name")]


# --------------------------------------------------------------------------- training

OptimizerName = Literal[
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "amsgrad", "adadelta"
]


class OptimizerConfig(Section):
    """A torch.optim optimizer by name; ``options`` go to its constructor (momentum, betas, ...)."""

    name: OptimizerName = Field(
        default="adam",
        description="torch.optim optimizer; momentum and nesterov are SGD with momentum 0.9 "
        "(Nesterov's for nesterov), amsgrad is Adam's AMSGrad variant.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the optimizer (momentum, betas, eps, weight_decay ...).")


class ScheduleConfig(Section):
    """Learning-rate decay per epoch t (seeds/002).

    time-based l0/(1+k t), step l0 gamma^int(t/tau), exponential l0 exp(-t/tau), cosine to
    ``min_lr``, or reduce-on-plateau of the validation loss.
    """

    name: Literal["constant", "time", "step", "exponential", "cosine", "plateau"] = Field(
        default="constant",
        description="Decay of the learning rate per epoch.")
    k: float = Field(default=0.1, ge=0, description="time: decay constant k.")
    tau: float = Field(default=10.0, gt=0, description="step: epochs per step; exponential: scale.")
    gamma: float = Field(default=0.5, gt=0, le=1, description="step/plateau: factor per step.")
    patience: int = Field(default=3, ge=0, description="plateau: epochs without improvement.")
    min_lr: float = Field(
        default=0.0, ge=0, description="cosine: the final rate; plateau: the lowest rate.")

    @model_validator(mode="after")
    def _options_of_the_schedule(self) -> ScheduleConfig:
        used = {"constant": set(), "time": {"k"}, "step": {"tau", "gamma"},
                "exponential": {"tau"}, "cosine": {"min_lr"},
                "plateau": {"gamma", "patience", "min_lr"}}[self.name]
        # a resolved config writes every field: only a value that differs from the default
        # is an option that would be silently ignored
        unused = sorted(f for f in self.model_fields_set - used - {"name"}
                        if getattr(self, f) != type(self).model_fields[f].default)
        if unused:
            raise ValueError(f"the {self.name} schedule takes {sorted(used) or 'no options'}, "
                             f"not {unused} (exponential decays as exp(-t/tau))")
        return self


class EarlyStoppingConfig(Section):
    """Stop training when the validation loss has not improved for ``patience`` epochs."""

    patience: int = Field(default=5, ge=1, description="Epochs without val-loss improvement.")
    restore_best: bool = Field(
        default=True, description="Keep the weights of the best validation epoch.")
    min_delta: float = Field(
        default=0.0, ge=0, description="Smallest val-loss decrease that counts as improvement.")


class AugmentConfig(Section):
    """Training batches mirrored by the detector's symmetries (seeds/003 flips its tower images).

    The image axes of an event are counted from the end: (eta, phi) or (channel, eta, phi), so
    eta is axis -2 and phi axis -1 (a depth-last volume, the LCD ECAL's (x, y, layer), needs
    ``eta_axis: -3, phi_axis: -2``). Each switch mirrors a random half of the events of every
    training batch, drawn independently per switch from (seed, epoch, batch), so a resumed run
    mirrors the same events. No switch for the 180-degree rotation is needed: with both on, the
    events mirrored in eta and in phi (a quarter, on average) are rotated by 180 degrees.
    The same events are mirrored in every listed input: the symmetry acts on the whole event.
    The raw batch is mirrored, before the preprocessing inside the network: a per-event norm
    commutes with a flip, a per-pixel standardization does not. Validation and test batches are
    never mirrored.
    """

    flip_eta: bool = Field(
        default=False, description="Mirror eta -> -eta (the detector's z -> -z symmetry) in a "
        "random half of the events: flip axis eta_axis.")
    flip_phi: bool = Field(
        default=False, description="Mirror phi -> -phi (a reflection through a plane holding "
        "the beam: the image of the opposite charge; seeds/003's horizontal flip) in a random "
        "half of the events: flip axis phi_axis.")
    eta_axis: int = Field(default=-2, le=-1, description="Eta axis of an event, counted from "
                          "the end: -2 for (eta, phi) and (channel, eta, phi) images.")
    phi_axis: int = Field(default=-1, le=-1, description="Phi axis of an event, from the end.")
    inputs: list[str] | None = Field(
        default=None, description="Inputs mirrored; default: every input with 2 or more axes "
        "per event. Other inputs are left as they are (so none may change under the symmetry, "
        "a signed eta say).")

    @model_validator(mode="after")
    def _two_different_axes(self) -> AugmentConfig:
        if self.eta_axis == self.phi_axis:
            raise ValueError(f"eta_axis and phi_axis are both {self.eta_axis}")
        return self


class TrainConfig(Section):
    """The training loop: epochs, batches, optimizer, schedule, loss, regularization,
    checkpoints, device and health monitoring."""

    epochs: int = Field(default=30, ge=1, description="Passes over the training split.")
    batch_size: int = Field(default=128, ge=1, description="Events per training step.")
    lr: float | Literal["auto"] = Field(
        default=1e-3, description="Learning rate, or auto: a tenth of the rate at which the "
        "range test (hepdl lr-find) sees training explode, found before the first epoch.")

    @field_validator("lr", mode="before")
    @classmethod
    def _positive_lr(cls, value: Any) -> float | str:
        if value == "auto":
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a positive number or auto, got {value!r}") from None
        if number <= 0:
            raise ValueError(f"the learning rate must be positive, got {value}")
        return number
    optimizer: OptimizerConfig = Field(
        default_factory=OptimizerConfig,
        description="The optimizer: a name (adam) or {name, options}.")
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig,
        description="The learning-rate schedule: a name (cosine) or its section.")
    loss: Literal["cross_entropy", "bce", "mse"] = Field(
        default="cross_entropy", description="mse makes the task a regression."
    )
    class_weights: Literal["balanced"] | list[float] | dict[str, float] | None = Field(
        default=None,
        description="Weights of the classes in the loss (positive): balanced (inverse "
        "frequency), a list in class order, or class name -> weight.")
    l1: float = Field(default=0.0, ge=0, description="L1 penalty on weights (not biases).")
    l2: float = Field(default=0.0, ge=0, description="L2 penalty on weights (not biases).")
    gradient_penalty: float = Field(
        default=0.0, ge=0, description="lambda of lambda ||d output / d input||^2 per event "
        "(seeds/002): the network is asked to vary smoothly with its inputs.")
    early_stopping: EarlyStoppingConfig | None = Field(
        default=None,
        description="Stop when the validation loss stops improving; default: train every epoch.")
    time_limit: float | None = Field(
        default=None, gt=0, description="Wall seconds; then checkpoint and stop, resumable."
    )
    init_from: str | None = Field(
        default=None, description="A run directory or model.pt whose matching weights start this "
        "run (fine-tuning); its fitted preprocessing is kept."
    )
    freeze: list[str] = Field(
        default_factory=list, description="fnmatch patterns of parameter names not trained."
    )
    threads: int | None = Field(default=None, ge=1, description="torch threads; default: torch's.")
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="cpu", description="Where training runs; auto: the GPU when torch sees one.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="Mixed precision of the forward pass (torch.autocast): bf16, "
        "or fp16 with a gradient scaler (GPU only); the weights stay float32.")
    health_every: int = Field(
        default=10, ge=0, description="Measure gradient and activation health (health.csv) on "
        "every N-th training batch; 0: never.")
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, description="Mirrored training events; default: none.")

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("class_weights")
    @classmethod
    def _positive_weights(cls, value: Any) -> Any:
        weights = value.values() if isinstance(value, dict) else value
        if isinstance(weights, str) or weights is None:
            return value
        if any(w <= 0 for w in weights):  # a batch of weight 0 has no mean loss
            raise ValueError("class weights must be positive")
        return value


# --------------------------------------------------------------------------- evaluation


class ResolutionConfig(Section):
    """Energy resolution of a regression in bins of the true energy, fitted with
    a/sqrt(E) + b + c/E, beside the calibrated sum of all input cells (the raw baseline)."""

    bins: list[float] = Field(
        default_factory=lambda: [10, 30, 60, 100, 150, 250, 350, 510],
        description="Edges of the true-energy bins (GeV).")
    compare_sum: bool = Field(default=True, description="Also the calibrated cell sum.")


class BaselinesConfig(Section):
    """A BDT and a cut-based identification on engineered features of the same events, trained
    on the run's training split and scored on its test split beside the network (seeds/003)."""

    features: dict[str, str] = Field(
        min_length=1, description="Feature name -> key (column, branch, dataset) in the source.")
    bdt: bool = Field(default=True, description="scikit-learn HistGradientBoosting on all of them.")
    cuts: dict[str, Literal["below", "above"]] = Field(
        default_factory=dict, description="Features of the cut-based ID -> the side that passes "
        "(h_over_e: below); cuts optimized for each signal efficiency. Empty: none.")
    efficiency: float = Field(default=0.9, gt=0, lt=1,
                              description="Signal efficiency of the working point compared.")
    cut_efficiencies: list[float] = Field(
        default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98],
        description="Working points of the cut-based ID that trace its ROC curve.")
    signal_class: str | None = Field(default=None, description="Default: the last class.")
    bootstrap: int = Field(default=200, ge=10, description="Resamplings for statistical errors.")


class EvaluateConfig(Section):
    """What the test split is evaluated for: rejections, bins, baselines, resolution."""

    baselines: BaselinesConfig | None = Field(
        default=None, description="Baselines on engineered features, in the same report.")
    bins: dict[str, list[float]] = Field(
        default_factory=dict, description="Observer -> bin edges for binned performance."
    )
    binned_plots: bool = Field(
        default=False, description="Classification: the ROC curves and output histograms again "
        "in each bin (seeds/003's pT bins).")
    resolution: ResolutionConfig | None = Field(
        default=None, description="Regression: relative resolution vs true energy, fitted.")
    efficiencies: list[float] = Field(
        default_factory=lambda: [0.5, 0.9],
        description="Signal efficiencies at which background rejection is reported.",
    )
    plots: bool = Field(
        default=True, description="Write the figures (plots/*.png, in report.html). false for "
        "quick exploratory runs: the metrics are the same, and a notebook still draws them with "
        "run.plot_roc() and run.plot_outputs().")

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, edges in value.items():
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise ValueError(f"bins of {name!r} must be at least two increasing edges")
        return value


# --------------------------------------------------------------------------- studies


class StudyConfig(Section):
    """A grid of changes to the base config, each combination trained as one trial."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="hepdl study normalization: dotted field path -> "
        "values, e.g. model.width: [32, 128] or "
        "preprocess.ecal: [[nonlinear_log_tanh], [{divide: {by: 150}}]].")
    feature_sets: dict[str, list[str]] = Field(
        default_factory=dict, description="hepdl study features: set name -> the columns that "
        "replace the one input, each set trained by the network and by a BDT (seeds/004).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Dotted path -> column name in the table (ECALNorm).")
    metric: str = Field(default="mean_auc", description="The test metric that ranks trials.")

    @field_validator("grid", "feature_sets")
    @classmethod
    def _values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in value.items() if not v]
        if empty:
            raise ValueError(f"entry {empty[0]!r} has no values")
        return value

    @model_validator(mode="after")
    def _something(self) -> StudyConfig:
        if not self.grid and not self.feature_sets:
            raise ValueError("a study needs a grid (hepdl study normalization) or feature_sets "
                             "(hepdl study features)")
        return self


# --------------------------------------------------------------------------- scans


class ParameterSpec(Section):
    """One dimension of a search space: categorical choices, or an int or float range."""

    type: Literal["categorical", "int", "float"] = Field(
        description="categorical (choices), int or float (low, high).")
    choices: list[Any] | None = Field(
        default=None,
        description="The values of a categorical parameter (any YAML value: a preprocessing chain "
        "too).")
    low: float | None = Field(default=None, description="Lower end of an int or float range.")
    high: float | None = Field(default=None, description="Upper end of an int or float range.")
    step: float | None = Field(default=None, gt=0, description="Grid step of a range.")
    log: bool = Field(default=False, description="Draw on a log scale (learning rates).")

    @model_validator(mode="after")
    def _complete(self) -> ParameterSpec:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs choices")
        if self.type != "categorical":
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"an {self.type} parameter needs low < high")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale parameter needs low > 0")
        return self


class ScanConfig(Section):
    """A hyperparameter scan on Optuna: search space, sampler, objective and budget."""

    space: dict[str, ParameterSpec] = Field(
        min_length=1, description="Dotted field path -> parameter, e.g. model.width.")
    sampler: Literal["grid", "random", "tpe", "gp", "cmaes"] = Field(
        default="tpe",
        description="grid (every point), random, tpe (Bayesian), gp (Gaussian process) or cmaes.")
    startup_trials: int = Field(
        default=10, ge=1, description="tpe, gp, cmaes: trials drawn at random before the "
        "sampler models the objective (Optuna's n_startup_trials).")
    objective: str = Field(default="mean_auc", description="A test metric: mean_auc, accuracy, "
                           "auc.Pi0 (one class's AUC), relative_resolution ...")
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="Whether the objective is maximized or minimized.")
    pruner: Literal["none", "median", "hyperband"] = Field(
        default="none", description="Stop unpromising trials early on their validation metric.")
    grace_seconds: float = Field(
        default=600.0, gt=0, description="A running trial silent this long (no epoch ended) "
        "belongs to a killed worker: it is marked failed and its values queued again.")
    trials: int | None = Field(default=20, ge=1, description="Trial budget of the whole study.")
    timeout: float | None = Field(default=None, gt=0, description="Seconds per worker.")
    storage: str | None = Field(
        default=None, description="Optuna storage URL (postgresql://...); default a journal "
        "file runs_dir/name/study.journal that needs no server.")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="Dotted path -> column name in the table.")


# --------------------------------------------------------------------------- the whole run


class TrackingConfig(Section):
    """Logging of each run (and scan trial) to TensorBoard and MLflow; off unless switched on.

    Neither is a dependency of hepdl: ``pip install tensorboard`` or ``mlflow-skinny
    sqlalchemy alembic`` (``hepdl[tracking]``) when used.
    """

    tensorboard: bool = Field(default=False, description="Scalars per epoch and the config "
                              "in RUN/tensorboard (tensorboard --logdir runs).")
    mlflow: bool = Field(default=False, description="An MLflow run per hepdl run: config as "
                         "parameters, metrics per epoch, test metrics, report as artifact.")
    mlflow_uri: str | None = Field(default=None, description="MLflow tracking URI; default "
                                   "sqlite:///RUNS_DIR/mlflow.db (artifacts in RUNS_DIR/mlruns).")
    experiment: str | None = Field(default=None, description="MLflow experiment; default: the "
                                   "config's name.")


class Config(Section):
    """A whole study: data, preprocessing, model, training and evaluation."""

    name: str = Field(
        default="run", pattern=r"^[A-Za-z0-9_.+-]+$",
        description="Name of the run (its directory under runs_dir).")
    seed: int = Field(
        default=1, ge=0,
        description="Seed of the split (unless data.split.seed), initialization and batch order.")
    runs_dir: str = Field(default="runs", description="Where run directories are created.")
    data: DataConfig = Field(description="The events: source, split, streaming.")
    preprocess: dict[str, list[TransformSpec]] = Field(
        default_factory=dict, description="Input name -> chain of transforms fitted on train."
    )
    model: ModelConfig = Field(default_factory=MLPConfig, description="The network: mlp or cnn.")
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="Optimizer, schedule, regularization and the loop.")
    evaluate: EvaluateConfig = Field(
        default_factory=EvaluateConfig, description="Test metrics, bins, baselines.")
    study: StudyConfig | None = Field(default=None, description="hepdl study: the grid.")
    scan: ScanConfig | None = Field(default=None, description="hepdl scan: the search.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="TensorBoard and MLflow logging.")

    @field_validator("model", mode="before")
    @classmethod
    def _mlp_by_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value:
            return {"name": "mlp", **value}
        return value

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "regression" if self.train.loss == "mse" else "classification"


# --------------------------------------------------------------------------- loading


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` as a float.

    PyYAML implements YAML 1.1, where a float needs a dot (``1.0e-3``); physicists write ``1e-3``.
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_UNION_TAGS = {"source": {"digits", "npz", "hdf5", "table", "root", "lcd"},
               "model": {"mlp", "cnn"}}


def _error_line(error: ValidationError, origin: str) -> ConfigError:
    """One ConfigError from pydantic's errors: the first, with its dotted path and the bad value."""
    first = error.errors()[0]
    # pydantic puts the tag of a discriminated union in the path (model.mlp.width); the path a
    # user writes, in YAML or --set, has no tag (model.width)
    loc = [str(p) for p in first["loc"] if not str(p).startswith("function-")]
    path = ".".join(p for i, p in enumerate(loc)
                    if not (i and loc[i - 1] in _UNION_TAGS and p in _UNION_TAGS[loc[i - 1]]))
    value = first.get("input")
    got = "" if first["type"] == "missing" else f" (got {value!r})"
    if isinstance(value, dict) and len(repr(value)) > 80:
        got = ""
    more = f" [+{error.error_count() - 1} more]" if error.error_count() > 1 else ""
    where = f"{origin}: {path}" if origin and path else origin or path
    # pydantic prefixes the messages of hepdl's own validators: the message is what matters
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return ConfigError(where, f"{message}{got}{more}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value (``3e-4`` -> 0.0003)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", f"expected KEY=VALUE such as train.lr=3e-4, got {text!r}")
    try:
        value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}", f"value is not valid YAML: {exc}") from None
    return key.strip().split("."), value


def set_path(raw: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    """Set ``raw[k1][k2]...[kn] = value``, creating missing sections."""
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(where, f"{'.'.join(keys[: depth + 1])} is {child!r}, not a section")
        node = child
    node[keys[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str],
                    fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy): ``overrides`` as ``--set`` texts
    (``train.lr=3e-4``, the value parsed as YAML), ``fields`` as Python values by path with
    ``__`` for the dot (``train__lr=3e-4``)."""
    import copy

    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        set_path(raw, keys, value, f"--set {'.'.join(keys)}")
    for name, value in (fields or {}).items():
        if isinstance(value, os.PathLike):  # runs_dir=work / "runs"
            value = os.fspath(value)
        set_path(raw, name.split("__"), value, name.replace("__", "."))
    return raw


def config_from_dict(raw: dict[str, Any], overrides: list[str] = (), origin: str = "",
                     fields: dict[str, Any] | None = None) -> Config:
    """Validate a config dict (with ``--set`` overrides and field values) into a
    [`Config`][hepdl.config.Config].

    Raises
    ------
    ConfigError
        For an unknown key, a wrong type or a value out of range, naming the dotted field path.
    """
    if not isinstance(raw, dict):
        raise ConfigError(origin, f"expected a mapping of sections, got {type(raw).__name__}")
    try:
        # Validate first so shorthands (optimizer: adam) are expanded before overrides land.
        config = Config.model_validate(raw)
        if overrides or fields:
            raw = apply_overrides(config.model_dump(mode="json"), list(overrides), fields)
            config = Config.model_validate(raw)
    except ValidationError as exc:
        raise _error_line(exc, origin) from None
    return config


def load_config(path: str | Path | dict[str, Any] | Config, overrides: list[str] | str = (),
                **fields: Any) -> Config:
    """Read a YAML config file (or a run directory's, or take a dict), apply overrides and
    validate.

    Parameters
    ----------
    path : path, dict or Config
        A YAML file, a run directory (its ``config.yaml``), the config as a dict, or a
        ``Config`` to change.
    overrides : list of str, or str
        ``--set`` texts, ``"train.lr=3e-4"``; values are parsed as YAML.
    **fields
        Field values by dotted path with ``__`` for the dot: ``train__lr=3e-4``,
        ``model__width=256``, ``data__source__path="calo.h5"``.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or a field is invalid.

    Example
    -------
    >>> config = load_config("examples/digits.yaml", train__epochs=5, name="digits-short")
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(path, Config):
        path = path.model_dump(mode="json")
    if isinstance(path, dict):
        return config_from_dict(path, overrides, origin="config", fields=fields)
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "no such config file")
    try:
        raw = yaml.load(path.read_text(), Loader=YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(str(path), f"not valid YAML{where}: {problem}") from None
    return config_from_dict(raw or {}, overrides, origin=str(path), fields=fields)


def dump_config(config: Config) -> str:
    """The resolved config as YAML, every default filled in."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def with_absolute_paths(config: Config, base: str | Path | None = None) -> Config:
    """``config`` with its data files and ``train.init_from`` as absolute paths (relative ones
    are taken from ``base``, the working directory by default) and each data glob replaced by
    the files it matches now, so that a run's stored config reads the same files from any
    directory and later (``hepdl export``, ``evaluate``, ``--resume``): a file added to a
    globbed folder after training would otherwise change the split. A glob that matches nothing
    is kept, for the reader to report."""
    base = Path.cwd() if base is None else Path(base)

    def absolute(spec: PathSpec | dict[str, PathSpec] | None, files: bool = True):
        if spec is None:
            return None
        if isinstance(spec, dict):
            return {key: absolute(value) for key, value in spec.items()}
        if isinstance(spec, list):
            found = [absolute(value) for value in spec]
            return [file for entry in found for file in ([entry] if isinstance(entry, str)
                                                         else entry)]
        if "://" in spec:  # a URL names its place already
            return spec
        given = Path(spec).expanduser()  # ~/data: the home directory, as the readers take it
        if not files:
            return str(given if given.is_absolute() else base / given)
        # the readers glob what they are given: the directory taken from `base` is escaped
        # (a [ in it is a name), and each glob's matches are listed sorted, as they read them
        pattern = str(given if given.is_absolute() else Path(glob.escape(str(base))) / given)
        if not glob.has_magic(str(given)):
            return pattern
        return [glob.escape(match) for match in sorted(glob.glob(pattern))] or pattern

    source = config.data.source
    for field in ("path", "files"):  # a file source's path, an LCD source's files
        if hasattr(source, field):
            source = source.model_copy(update={field: absolute(getattr(source, field))})
    split = config.data.split.model_copy(update={"files": absolute(config.data.split.files)})
    train = config.train.model_copy(update={"init_from": absolute(config.train.init_from,
                                                                  files=False)})
    data = config.data.model_copy(update={"source": source, "split": split})
    return config.model_copy(update={"data": data, "train": train})
