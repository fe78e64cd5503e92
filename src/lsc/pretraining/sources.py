"""Where pre-training draws its input from: a tensor, a re-iterable of batches, or noise;
each batch validated and put batch-first on the model's device."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..checks import NonFiniteError
from ..models import Stack
from ..parts import input_of


def copy_task_inputs(
    count: int, time_steps: int, features: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Inputs of the copy task: a one-hot string of random symbols over the first
    ``features - 1`` channels during the first half of the sequence, silence, and a
    recall cue on the last channel from the middle on. Shape (count, time_steps, features)."""
    if features < 2 or time_steps < 2:
        raise ValueError(f"the copy task needs >= 2 features and >= 2 steps, got {features} and {time_steps}")
    half = time_steps // 2
    symbols = torch.randint(0, features - 1, (count, half), generator=generator)
    x = torch.zeros(count, time_steps, features)
    x[:, :half].scatter_(2, symbols.unsqueeze(2), 1.0)
    x[:, half:, -1] = 1.0
    return x


def _first(item: object, time_first: bool, key: int | str = 0) -> Tensor:
    """A batch-first input batch from one item of the data (:func:`lsc.parts.input_of`):
    a tensor in the module's layout, or a ``PackedSequence`` padded and cut to its shortest
    sequence (a state before that step never saw padding; docs/design.md section 9)."""
    x = input_of(item, key)
    if isinstance(x, PackedSequence):
        padded, lengths = pad_packed_sequence(x, batch_first=True)
        return padded[:, : int(lengths.min())]
    return x.transpose(0, 1) if time_first and x.dim() >= 2 else x


class InputSource:
    """An endless stream of batch-first input batches (B, T, F) (tokens (B, T); a
    feed-forward network's (B, F)) that knows how many batches it has given
    (:attr:`position`). The data is read in the model's own layout, as :func:`lsc.measure`
    reads it: time-first for a ``batch_first=False`` module (one rule for both).

    * a tensor: random mini-batches of ``batch_size`` along its batch axis, each an
      independent draw with ``generator`` (the whole tensor when it is smaller);
    * a re-iterable (a list, a ``DataLoader``, ``task.inputs(...)``): its items in order,
      again and again; a tuple or list item contributes its element ``input_key`` (0),
      a dict item its entry ``input_key`` (:func:`lsc.parts.input_of`). A one-shot
      iterator (a generator) is refused: pre-training draws more batches than one pass
      may hold, and a resumed run must find its place again. A ``PackedSequence``
      (the data, or an item) is read up to its shortest sequence's length;
    * ``None``: standard Gaussian input (batch_size, time_steps, features) (random
      token ids for a model that embeds tokens; (batch_size, features) for a
      feed-forward network).

    :meth:`seek` puts a new source where an interrupted one stopped: a re-iterable is
    passed again from its start up to that position (exact when every pass yields the
    same items, as a tensor, a list or ``task.inputs`` do); tensors and noise draw from
    ``generator``, whose state the caller restores.
    """

    def __init__(
        self,
        stack: Stack,
        data: Tensor | Iterable[object] | None,
        *,
        batch_size: int = 32,
        time_steps: int = 50,
        generator: torch.Generator | None = None,
        input_key: int | str = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(data, PackedSequence):
            data = [data]  # one batch
        if isinstance(data, Iterator):
            raise ValueError(
                f"data is a one-shot iterator ({type(data).__name__}): pre-training may need more batches than one "
                "pass and a resumed run must find its place again; pass a re-iterable instead (a tensor, a list of "
                "batches, a DataLoader or task.inputs(...))"
            )
        if data is not None and not isinstance(data, (Tensor, Iterable)):
            raise TypeError(f"data must be a tensor, a re-iterable of batches or None, got {type(data).__name__}")
        self.stack, self.data, self.batch_size, self.time_steps = stack, data, batch_size, time_steps
        self.generator, self.input_key = generator, input_key
        self.time_first = data is not None and stack.recurrent and not stack.batch_first
        self.position = 0
        self._stream = self._batches()

    def __iter__(self) -> Iterator[Tensor]:
        return self

    def __next__(self) -> Tensor:
        x = next(self._stream)
        self.position += 1
        return x

    def seek(self, position: int) -> None:
        """Continue as a source that has already given ``position`` batches."""
        if isinstance(self.data, Tensor) or self.data is None:
            self.position = position
            return
        self._stream, self.position = self._batches(), 0
        for _ in range(position):
            next(self)

    def _batches(self) -> Iterator[Tensor]:
        data = self.data
        if isinstance(data, Tensor):
            if self.time_first and data.dim() >= 2:
                data = data.transpose(0, 1)
            yield from _tensor_batches(self.stack, data, self.batch_size, self.generator)
        elif data is None:
            yield from _noise(self.stack, self.batch_size, self.time_steps, self.generator)
        else:
            while True:
                empty = True
                for item in data:
                    empty = False
                    yield _first(item, self.time_first, self.input_key)
                if empty:
                    raise ValueError("data yielded no batches; pass a non-empty tensor, DataLoader or re-iterable")


def _tensor_batches(stack: Stack, data: Tensor, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """Each batch an independent random draw without replacement (no epoch position to
    keep, so a run resumed with the generator's state draws the same batches)."""
    n = data.shape[0] if data.dim() else 0
    if n == 0:
        raise ValueError(f"data is empty (shape {tuple(data.shape)}); pass at least one sample")
    dev = generator.device if generator is not None else "cpu"
    while True:
        if n <= batch_size:
            yield data
        else:
            pick = torch.randperm(n, generator=generator, device=dev)[:batch_size]
            yield data.index_select(0, pick.to(data.device))


def _noise(stack: Stack, batch: int, time_steps: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    dev = generator.device if generator is not None else stack.device
    while True:
        if stack.takes_tokens:
            vocab = cast(nn.Embedding, stack.encoder).num_embeddings
            x = torch.randint(0, vocab, (batch, time_steps), generator=generator, device=dev)
        elif stack.input_size is None:
            raise ValueError("the model's input size is unknown (a custom encoder): pass data instead of None")
        else:
            shape = (batch, time_steps, stack.input_size) if stack.recurrent else (batch, stack.input_size)
            x = torch.randn(shape, generator=generator, device=dev, dtype=stack.dtype)
        yield x


def next_input(stack: Stack, source: Iterator[Tensor], step: int) -> Tensor:
    """The next batch, validated and batch-first on the model's device and dtype; a bad
    batch is the caller's input error, never the model's divergence."""
    try:
        x = next(source)
    except StopIteration:
        raise ValueError(f"data ran out after {step} batches; pass a re-iterable (a tensor, list or DataLoader)") from None
    try:
        x = stack.check_input(x, batch_first=True)
    except NonFiniteError as exc:
        raise ValueError(f"input batch {step}: {exc}") from None
    return x.to(device=stack.device, dtype=stack.dtype if x.is_floating_point() else x.dtype)


class RankItems:
    """Every ``count``-th item of a re-iterable, starting at ``index``: one rank's share."""

    def __init__(self, data: Iterable[object], index: int, count: int) -> None:
        self.data, self.index, self.count = data, index, count

    def __iter__(self) -> Iterator[object]:
        for i, item in enumerate(self.data):
            if i % self.count == self.index:
                yield item
