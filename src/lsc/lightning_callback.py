"""A PyTorch Lightning callback (the optional extra ``lightning``): pre-train the
LightningModule's recurrent parts to the LSC when fitting starts, and log their radii to
the trainer's logger every ``every`` steps.

    from lsc.lightning_callback import LSCCallback
    trainer = lightning.Trainer(callbacks=[LSCCallback(batch, target=0.5, every=100)])

The LightningModule is taken as the model: its ``forward`` on ``batch`` shows lsc its
recurrent parts (:mod:`lsc.parts`), or it is a stack itself.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from .condition import Target
from .monitor import Monitor, scalars
from .parts import Forward, InputKey
from .pretraining import NotConvergedWarning, PretrainResult, pretrain


class LSCCallback(pl.Callback):
    """Args:
    batch: the held input batch (as the LightningModule's ``forward`` takes it): what
        the radii are measured on, and what pre-training draws from unless ``data``
        is given.
    target, kinds: the LSC target and the edges (as :func:`lsc.pretrain`).
    every: log the radii every ``every`` optimiser steps (and at step 0); ``None``: never.
    pretrain: pre-train at ``on_fit_start`` (default ``True``).
    data: pre-training inputs (a tensor or re-iterable; default ``batch``).
    pretrain_options: more keyword arguments for :func:`lsc.pretrain`: its settings
        (``config=lsc.PretrainConfig(...)``, or by name: ``max_steps``, ``tol`` ...) and
        its other options (``part`` ...).
    input_key, forward: how the module is called on a batch (as for :func:`lsc.measure`:
        ``input_key=(0, 1)`` for a ``forward(x, lengths)`` fed ``(x, lengths, y)``).

    Pre-training that does not converge prints one line on rank zero (``lsc: warning:
    ...``: the edges that missed and what to try) and logs ``lsc/pretrain_converged`` 0.
    """

    def __init__(
        self,
        batch: object,
        *,
        target: Target = 0.5,
        kinds: list[str] | None = None,
        every: int | None = 100,
        pretrain: bool = True,
        data: Tensor | Iterable[object] | None = None,
        pretrain_options: Mapping[str, Any] | None = None,
        input_key: InputKey = 0,
        forward: Forward | None = None,
    ) -> None:
        self.batch, self.target, self.kinds, self.every = batch, target, kinds, every
        self.call: dict[str, Any] = {"input_key": input_key, "forward": forward}
        self.do_pretrain, self.data = pretrain, data
        self.pretrain_options = dict(pretrain_options or {})
        self.result: PretrainResult | None = None
        self.logged: list[tuple[int, dict[str, float]]] = []
        self._monitor: Monitor | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batch = move_data_to_device(self.batch, pl_module.device)
        if self.do_pretrain:
            options = {"progress": False, **self.call, **self.pretrain_options}
            if "config" not in options:  # a config given in pretrain_options keeps its own target and kinds
                options.update(target=self.target, kinds=self.kinds)
            # one batch per rank: distributed pre-training gives every world-size-th item to a rank
            data = (
                self.data
                if self.data is not None
                else batch
                if isinstance(batch, Tensor)
                else [batch] * max(1, trainer.world_size)
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NotConvergedWarning)
                self.result = pretrain(pl_module, data, **options)
            for w in caught:  # not converged: one line on the console, from rank zero only
                if not issubclass(w.category, NotConvergedWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                elif trainer.is_global_zero:
                    print(f"lsc: warning: {w.message}", file=sys.stderr, flush=True)
            if trainer.logger is not None:
                trainer.logger.log_metrics(
                    {
                        "lsc/pretrain_steps": float(self.result.steps),
                        "lsc/pretrain_converged": float(self.result.converged),
                    },
                    step=0,
                )
        if self.every is not None:
            self._monitor = Monitor(pl_module, batch, self.every, target=self.target, kinds=self.kinds, **self.call)
            self._log(trainer, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # optimiser steps taken, this batch's included
        if self._monitor is not None and step > 0 and step % self._monitor.every == 0:
            self._log(trainer, step)

    def _log(self, trainer: pl.Trainer, step: int) -> None:
        assert self._monitor is not None
        values = scalars(self._monitor.measure())  # measure leaves the module's mode as it was (lsc.parts.find)
        self.logged.append((step, values))
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"lsc/{k}": v for k, v in values.items()}, step=step)
