"""Losses and metrics of the task kinds (docs/design.md A4.1-A4.3).

* ``mode``: a label per sequence, repeated at every step (sl-MNIST, SHD in the reference).
  Loss: cross-entropy averaged over all steps. Metric, the reference's "mode accuracy":
  argmax of the time-averaged logits, ``argmax_c (1/T) sum_t y_{t,c}``.
* ``last``: a label per sequence read at the last step (row/pixel MNIST, delayed XOR).
  Loss and accuracy on ``y_T``.
* ``steps``: a label per step where ``mask`` is true (copy, store-and-recall). Loss and
  accuracy over the masked steps.
* ``regress_last`` / ``regress_steps``: mean squared error at the last step / every step
  (adding problem / Lorenz-63); the metric is the MSE itself.
* ``lm``: next-token cross-entropy at every step; the metric is the perplexity
  ``exp(sum of CE over all tokens / number of tokens)``, the exp of the data-set mean (the
  reference's Keras metric averaged per-batch perplexities, which is not the same).

A :class:`Tally` sums what an epoch needs so data-set metrics are exact, not averages of
batch averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor
from torch.nn import functional as F

from ..checks import unknown_name

#  name -> (metric name, higher is better, targets have a time axis)
KINDS: dict[str, tuple[str, bool, bool]] = {
    "mode": ("accuracy", True, False),
    "last": ("accuracy", True, False),
    "steps": ("accuracy", True, True),
    "regress_last": ("mse", False, False),
    "regress_steps": ("mse", False, True),
    "lm": ("perplexity", False, True),
}


def check_objective(name: str) -> str:
    if name not in KINDS:
        raise unknown_name("objective", name, KINDS)
    return name


def metric_name(objective: str) -> str:
    return KINDS[check_objective(objective)][0]


def higher_is_better(objective: str) -> bool:
    return KINDS[check_objective(objective)][1]


def per_step_targets(objective: str) -> bool:
    """Whether the targets have a time axis (and are repeated with the input in time)."""
    return KINDS[check_objective(objective)][2]


@dataclass
class Tally:
    """Sums over an epoch: loss (sum and count of the terms) and metric (sum and count)."""

    loss_sum: float = 0.0
    loss_count: int = 0
    metric_sum: float = 0.0
    metric_count: int = 0

    def add(self, other: Tally) -> None:
        self.loss_sum += other.loss_sum
        self.loss_count += other.loss_count
        self.metric_sum += other.metric_sum
        self.metric_count += other.metric_count

    def loss(self) -> float:
        return self.loss_sum / max(self.loss_count, 1)

    def metric(self, objective: str) -> float:
        if objective == "lm":  # perplexity = exp(data-set mean CE)
            return math.exp(min(self.metric_sum / max(self.metric_count, 1), 700.0))
        return self.metric_sum / max(self.metric_count, 1)


def loss_and_tally(objective: str, y: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tally]:
    """The differentiable batch loss (a mean) and the batch's :class:`Tally`.

    ``y``: model outputs (B, T, C); ``target``: labels (B,) for mode/last, (B, T) for
    steps/lm, values (B, C) for regress_last, (B, T, C) for regress_steps.
    """
    B, T, C = y.shape
    if objective == "mode":
        ce = F.cross_entropy(y.reshape(B * T, C), target.repeat_interleave(T), reduction="none").view(B, T)
        loss = ce.mean()
        correct = (y.detach().mean(1).argmax(-1) == target).sum()
        return loss, Tally(float(ce.detach().mean(1).sum()), B, float(correct), B)
    if objective == "last":
        ce = F.cross_entropy(y[:, -1], target, reduction="sum")
        correct = (y[:, -1].detach().argmax(-1) == target).sum()
        return ce / B, Tally(float(ce.detach()), B, float(correct), B)
    if objective in ("steps", "lm"):
        if mask is None:
            logits, labels = y.reshape(B * T, C), target.reshape(B * T)
        else:
            logits, labels = y[mask], target[mask]
        n = labels.numel()
        ce = F.cross_entropy(logits, labels, reduction="sum")
        loss = ce / max(n, 1)
        if objective == "lm":
            return loss, Tally(float(ce.detach()), n, float(ce.detach()), n)
        correct = (logits.detach().argmax(-1) == labels).sum()
        return loss, Tally(float(ce.detach()), n, float(correct), n)
    if objective in ("regress_last", "regress_steps"):
        pred = y[:, -1] if objective == "regress_last" else y
        if mask is not None and objective == "regress_steps":
            pred, target = pred[mask], target[mask]
        se = ((pred - target) ** 2).sum()
        n = target.numel()
        return se / max(n, 1), Tally(float(se.detach()), n, float(se.detach()), n)
    raise unknown_name("objective", objective, KINDS)
