"""The training objective: the loss of the task, class weights, and L1/L2 weight penalties."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from hepdl.errors import ConfigError


def class_weight_vector(setting, labels: np.ndarray, class_names: list[str]) -> torch.Tensor | None:
    """Per-class loss weights: explicit (list or by name), ``balanced``, or None.

    ``balanced`` is scikit-learn's ``n_events / (n_classes * n_events_of_class)``.
    """
    if setting is None:
        return None
    n = len(class_names)
    if setting == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(labels)
        weights = np.ones(n)
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    elif isinstance(setting, dict):
        unknown = sorted(set(setting) - set(class_names))
        if unknown:
            raise ConfigError("train.class_weights",
                              f"unknown class {unknown[0]!r}; the classes are {class_names}")
        weights = np.array([setting.get(name, 1.0) for name in class_names])
    else:
        if len(setting) != n:
            raise ConfigError("train.class_weights",
                              f"expected {n} weights (one per class {class_names}), "
                              f"got {len(setting)}")
        weights = np.asarray(setting, dtype=float)
    return torch.tensor(weights, dtype=torch.float32)


class Objective:
    """``loss(logits, labels) + l1 sum|W| + l2 sum W^2`` (weights of matrices and kernels only).

    Class weights give each event the weight of its true class; the mean is weighted, as in
    ``torch.nn.CrossEntropyLoss(weight=...)``.
    """

    def __init__(self, loss: str, *, class_weights: torch.Tensor | None = None, l1: float = 0.0,
                 l2: float = 0.0, gradient_penalty: float = 0.0):
        self.loss = loss
        self.class_weights = class_weights
        self.l1, self.l2 = l1, l2
        self.gradient_penalty = gradient_penalty

    def data_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.loss == "mse":
            return F.mse_loss(logits.squeeze(1) if labels.ndim == 1 else logits, labels)
        if self.loss == "cross_entropy":
            return F.cross_entropy(logits, labels, weight=self.class_weights)
        # bce: one sigmoid for two classes, else one per class against one-hot targets
        if logits.shape[1] == 1:
            target = labels.to(logits.dtype).unsqueeze(1)
        else:
            target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        per_event = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
        if self.class_weights is None:
            return per_event.mean()
        w = self.class_weights[labels]
        return (per_event * w).sum() / w.sum()

    def weight_sum(self, labels: torch.Tensor) -> float:
        """The denominator of a batch's mean :meth:`data_loss`: its events, or the sum of their
        class weights (what a data-parallel rank's share of a batch is measured in)."""
        if self.class_weights is None or not len(labels):
            return float(len(labels))
        return float(self.class_weights[labels].sum())

    def penalty(self, model: torch.nn.Module) -> torch.Tensor | float:
        if not (self.l1 or self.l2):
            return 0.0
        weights = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        total = 0.0
        if self.l1:
            total = total + self.l1 * sum(w.abs().sum() for w in weights)
        if self.l2:
            total = total + self.l2 * sum(w.pow(2).sum() for w in weights)
        return total

    def input_gradient_penalty(self, logits: torch.Tensor, labels: torch.Tensor,
                               inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """lambda * mean over events of ||d y / d x||^2 (seeds/002; Drucker & LeCun 1992's
        "double backpropagation"), x the inputs as the file gives them (preprocessing is part of
        the network). y is the output: the logit of a single-output network (binary BCE,
        regression), the log-probability of the true class with several classes. Events of a
        batch are independent, so one backward pass of sum(y) gives every event's gradient;
        ``create_graph`` lets the optimizer differentiate the penalty in turn."""
        if logits.shape[1] == 1:
            y = logits[:, 0]
        else:
            y = torch.log_softmax(logits, dim=1).gather(1, labels.long().unsqueeze(1))[:, 0]
        grads = torch.autograd.grad(y.sum(), list(inputs.values()), create_graph=True)
        squared = sum(g.flatten(1).pow(2).sum(1) for g in grads)
        return self.gradient_penalty * squared.mean()

    def __call__(self, model, logits, labels, inputs: dict[str, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(total, data_loss)``: what is minimized, and the loss alone for the logs.
        ``inputs`` (with ``requires_grad``) are needed for the gradient penalty."""
        data = self.data_loss(logits, labels)
        total = data + self.penalty(model)
        if self.gradient_penalty:
            if inputs is None:
                raise ValueError("the gradient penalty needs the batch's inputs")
            total = total + self.input_gradient_penalty(logits, labels, inputs)
        return total, data


def objective_for(config, labels: np.ndarray, class_names: list[str]) -> Objective:
    """The Objective that ``config.train`` describes, class weights taken from the training
    ``labels`` (none for regression): one place for the loop and the range test."""
    train = config.train
    weights = (None if config.task == "regression" else
               class_weight_vector(train.class_weights, labels, class_names))
    return Objective(train.loss, class_weights=weights, l1=train.l1, l2=train.l2,
                     gradient_penalty=train.gradient_penalty)
