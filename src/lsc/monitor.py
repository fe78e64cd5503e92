"""Stability watched while a model trains: :class:`Monitor`, called from the user's own
loop, measures the model on a held batch every ``every`` steps with cheap settings and
writes one JSON line per measurement (and TensorBoard scalars per edge when
``tensorboard`` is installed). The PyTorch Lightning callback (:mod:`lsc.lightning_callback`) is
built on it.

    monitor = lsc.Monitor(model, held_batch, every=100, log_dir="runs/x")
    for step, (x, y) in enumerate(loader):
        ...                       # the user's training step
        monitor(step)             # measures at steps 0, 100, 200, ...
    monitor.close()
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch import nn

from .checks import check_count
from .condition import StabilityReport, Target, measure
from .jacobian import Estimator
from .parts import Forward, InputKey

CHEAP = Estimator("auto", steps=40, rtol=1e-2)
"""The monitor's estimator: at most 40 Arnoldi steps, stopping at 1 % (edge means to
about 0.1-0.5 %, docs/design.md section 3)."""


def edge_name(kind: str, layer: int, module: str = "") -> str:
    """``"lstm/time/0"`` (``"time/0"`` for the model itself): a scalar's name per edge."""
    return "/".join(([module] if module else []) + [kind, str(layer)])


def scalars(report: StabilityReport) -> dict[str, float]:
    """Every edge's mean radius by :func:`edge_name`."""
    return {edge_name(e.kind, e.layer, e.module): e.mean for e in report.edges}


class Monitor:
    """Measure ``model`` on ``batch`` every ``every`` steps (see the module docstring).

    Args:
        model: anything :func:`lsc.measure` takes (a user's model: its recurrent parts
            are found by running it).
        batch: the held input batch, as ``model`` takes it.
        every: the period in steps (``step % every == 0`` measures).
        target, kinds: as for :func:`lsc.measure` (the report keeps the gaps).
        time_points: time points per measurement (default 2, evenly spaced).
        log_dir: where ``stability.jsonl`` (one row per measurement: ``step``,
            ``seconds`` and every edge's mean) and, with ``tensorboard`` installed and
            ``tensorboard=True``, TensorBoard event files go; ``None``: nothing written.
        tensorboard: write TensorBoard scalars too (``"auto"``: when installed).
        input_key, forward: how ``model`` is called on ``batch`` (as for :func:`lsc.measure`:
            ``input_key=(0, 1)`` for a ``forward(x, lengths)`` fed ``(x, lengths, y)``).
    """

    def __init__(
        self,
        model: nn.Module,
        batch: object,
        every: int = 100,
        *,
        target: Target = "auto",
        kinds: list[str] | None = None,
        time_points: int = 2,
        log_dir: str | Path | None = None,
        tensorboard: bool | str = "auto",
        estimator: Estimator = CHEAP,
        input_key: InputKey = 0,
        forward: Forward | None = None,
    ) -> None:
        self.model, self.batch = model, batch
        self.input_key, self.forward = input_key, forward
        self.every = check_count(every, "every")
        self.target, self.kinds, self.time_points, self.estimator = target, kinds, time_points, estimator
        self.reports: list[tuple[int, StabilityReport]] = []
        self.path = None if log_dir is None else Path(log_dir) / "stability.jsonl"
        self._writer = None
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    if tensorboard is True:
                        raise ImportError(
                            "tensorboard=True needs the tensorboard package: pip install tensorboard"
                        ) from None
                else:
                    self._writer = SummaryWriter(str(log_dir))

    def measure(self) -> StabilityReport:
        """One measurement now, with the monitor's settings."""
        return measure(
            self.model,
            self.batch,
            target=self.target,
            kinds=self.kinds,
            time_points=self.time_points,
            estimator=self.estimator,
            seed=0,
            input_key=self.input_key,
            forward=self.forward,
        )

    def __call__(self, step: int) -> StabilityReport | None:
        """Measure when ``step`` is a multiple of ``every``; the report, else ``None``."""
        if step % self.every:
            return None
        report = self.measure()
        self.reports.append((step, report))
        values = scalars(report)
        if self.path is not None:
            row = {"step": step, "seconds": report.seconds, **{k: v for k, v in values.items() if math.isfinite(v)}}
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"lsc/{name}", value, step)
            self._writer.flush()
        return report

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
