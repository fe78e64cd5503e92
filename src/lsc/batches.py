"""Where pre-training draws its input from: a tensor, an iterable of batches, or noise."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from .models import Stack


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


def _first(item: object) -> Tensor:
    if isinstance(item, (tuple, list)):
        if not item:
            raise ValueError("data yielded an empty tuple; expected (inputs, ...) or a tensor")
        item = item[0]
    if not isinstance(item, Tensor):
        raise TypeError(f"data must yield tensors or (input, ...) tuples, got {type(item).__name__}")
    return item


def input_batches(
    stack: Stack,
    data: Tensor | Iterable[object] | None,
    *,
    batch_size: int = 32,
    time_steps: int = 50,
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """An endless stream of batch-first input batches (B, T, F) (tokens (B, T); a
    feed-forward network's (B, F)), whatever the layout of the model itself.

    * a tensor: random mini-batches of ``batch_size`` along its batch axis, each an
      independent draw with ``generator`` (the whole tensor when it is smaller);
    * an iterable (e.g. a ``DataLoader``): its items in order, again and again; a
      tuple or list item contributes its first element;
    * ``None``: standard Gaussian input (batch_size, time_steps, features) (random
      token ids for a model that embeds tokens; (batch_size, features) for a
      feed-forward network).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, Tensor):
        yield from _tensor_batches(stack, data, batch_size, generator)
    elif data is None:
        yield from _noise(stack, batch_size, time_steps, generator)
    else:
        while True:
            empty = True
            for item in data:
                empty = False
                yield _first(item)
            if empty:
                raise ValueError("data yielded no batches; pass a non-empty tensor, DataLoader or iterable")


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
            vocab = stack.encoder.num_embeddings  # type: ignore[union-attr]
            x = torch.randint(0, vocab, (batch, time_steps), generator=generator, device=dev)
        elif stack.input_size is None:
            raise ValueError("the model's input size is unknown (a custom encoder): pass data instead of None")
        else:
            shape = (batch, time_steps, stack.input_size) if stack.recurrent else (batch, stack.input_size)
            x = torch.randn(shape, generator=generator, device=dev, dtype=stack.dtype)
        yield x
