"""The recurrent parts of any model, found by running the model's own forward once.

lsc measures and pre-trains stacks (:func:`lsc.models.as_stack`: ``torch.nn``
LSTM/GRU/RNN modules, lsc's own stacks, modules with step-protocol ``cells``). A model
people write is usually more than that: an embedding, a ``torch.nn.LSTM``, a head. For
such a model :func:`find` runs its ``forward`` on one batch, with a forward pre-hook on
every submodule a stack can be made of (the outermost ones: an ``nn.LSTM`` inside an
lsc stack is the stack's), and records the input each one really receives: an LSTM
after an embedding is measured on the embedded vectors, and its encoder edge is
∂s⁰/∂(that input) (docs/design.md section 0).

What is found: ``torch.nn.LSTM``/``GRU``/``RNN`` (not bidirectional), lsc stacks, and
``nn.Sequential`` chains of ``Linear`` layers with element-wise activations,
normalisation or dropout between them (:func:`lsc.models.ffn.linear_chain`), however
deeply nested. What is not: cells stepped in a loop by the user's ``forward``,
attention, convolutions; a part's initial state is taken as zero (the hidden state a
``forward`` passes in is not read).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .models import Stack, as_stack
from .models.ffn import linear_chain

_SEQUENCE_MODULES = (nn.RNNBase, Stack)


@dataclass(frozen=True)
class Part:
    """A recurrent submodule, named by its qualified name in the model (``"rnn"``,
    ``"encoder.lstm"``), and the input it received (in its own layout)."""

    name: str
    module: nn.Module
    inputs: Tensor
    lengths: Tensor | None = None  # of a PackedSequence input: each sequence's true length


def visible(model: nn.Module) -> bool:
    """Whether ``model`` is itself a stack lsc can see (no search needed). A module lsc
    knows but refuses (a bidirectional ``nn.LSTM``) raises its own message here."""
    try:
        as_stack(model)
    except TypeError:
        return False
    return True


def _is_part(module: nn.Module) -> bool:
    if isinstance(module, _SEQUENCE_MODULES):
        return True
    return isinstance(module, nn.Sequential) and linear_chain(module) is not None


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost parts inside ``model`` (not ``model`` itself)."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or not _is_part(module):
            continue
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue  # inside a part already found: the part's own
        found.append((name, module))
    return found


def find(model: nn.Module, x: Tensor) -> list[Part]:
    """The recurrent parts of ``model`` and the inputs each receives when ``model(x)``
    runs (in eval mode, without a graph; the model's mode is restored)."""
    candidates = _candidates(model)
    if not candidates:
        raise TypeError(
            f"lsc found no recurrence in a {type(model).__name__}: it has no torch.nn.LSTM/GRU/RNN, lsc stack or "
            "nn.Sequential chain of Linear layers and activations inside (cells stepped in a loop by your forward, "
            "attention and convolutions are not discovered). "
            "Pass the recurrent submodule itself, or lsc.view(rnn, encoder=..., decoder=...)."
        )
    seen: dict[str, tuple[Tensor, Tensor | None]] = {}

    def hook(name: str, module: nn.Module, args: tuple[object, ...]) -> None:
        if name in seen:
            return  # called again in the same forward: the first call's input stands
        if not args or not isinstance(args[0], (Tensor, PackedSequence)):
            raise TypeError(f"{name} ({type(module).__name__}) was called without a tensor input")
        if getattr(module, "bidirectional", False):
            raise ValueError(
                f"{name} is a bidirectional {type(module).__name__}: lsc measures unidirectional recurrences; "
                "measure a unidirectional module instead"
            )
        if isinstance(args[0], PackedSequence):  # padded, and each sequence's length
            padded, lengths = pad_packed_sequence(args[0], batch_first=bool(getattr(module, "batch_first", True)))
            seen[name] = (padded.detach(), lengths)
        else:
            seen[name] = (args[0].detach(), None)

    handles = [m.register_forward_pre_hook(lambda mod, args, n=n: hook(n, mod, args)) for n, m in candidates]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    parts = [Part(n, m, *seen[n]) for n, m in candidates if n in seen]
    if not parts:
        names = ", ".join(n for n, _ in candidates)
        raise TypeError(f"the forward of a {type(model).__name__} did not call its recurrent parts ({names}) on this input")
    return parts


def one(model: nn.Module, x: Tensor) -> Part:
    """The model's only recurrent part (pre-training changes one part at a time)."""
    parts = find(model, x)
    if len(parts) > 1:
        names = ", ".join(p.name for p in parts)
        raise ValueError(
            f"a {type(model).__name__} has {len(parts)} recurrent parts ({names}); lsc.pretrain changes one at a "
            f"time: pass part=<name> (one of {names})"
        )
    return parts[0]


def named(model: nn.Module, x: Tensor, name: str) -> Part:
    """The recurrent part called ``name`` and its input."""
    parts = find(model, x)
    for p in parts:
        if p.name == name:
            return p
    raise ValueError(f"no recurrent part {name!r} in a {type(model).__name__}; found: {', '.join(p.name for p in parts)}")


class Through:
    """A re-iterable of what ``part`` receives when ``model`` runs on each input of
    ``data`` (a re-iterable of batches or ``(inputs, ...)`` tuples, as pre-training takes)."""

    def __init__(self, model: nn.Module, name: str, data: Iterable[object]) -> None:
        self.model, self.name, self.data = model, name, data

    def __iter__(self) -> Iterator[Tensor]:
        for item in self.data:
            x = item[0] if isinstance(item, (tuple, list)) and item else item
            if not isinstance(x, Tensor):
                raise TypeError(f"data must yield tensors or (input, ...) tuples, got {type(x).__name__}")
            yield named(self.model, x, self.name).inputs


def inputs_of(model: nn.Module, part: Part, data: Tensor, batch_size: int) -> Tensor:
    """What ``part`` receives for every sample of ``data``: the model run on chunks of
    ``batch_size`` samples along the part's batch axis (the model is taken to read its
    input in its recurrent part's layout), joined along that axis."""
    axis = 0 if as_stack(part.module).batch_first else 1
    n = data.shape[axis] if data.dim() > axis else 0
    if n == 0:
        raise ValueError(f"data is empty (shape {tuple(data.shape)}); pass at least one sample")
    chunks = [named(model, data.narrow(axis, i, min(batch_size, n - i)), part.name).inputs for i in range(0, n, batch_size)]
    return torch.cat(chunks, dim=axis)


def view(rnn: nn.Module, *, encoder: nn.Module | None = None, decoder: nn.Module | None = None,
         input_size: int | None = None) -> Stack:
    """A stack over ``rnn``'s own parameters, with ``encoder`` before it and ``decoder``
    after it (e.g. a model's embedding and head): what lsc measures and pre-trains when the
    parts are known, without a search. Nothing is copied and nothing is registered on the
    user's model: pre-training the view changes ``rnn`` (and, when their edges are chosen,
    the encoder's and decoder's) parameters in place; the model's class, attributes and
    ``state_dict`` keys stay.

    ``input_size``: the raw input's feature size when ``encoder`` hides it (an
    ``nn.Linear`` or ``nn.Embedding`` says it itself)."""
    base = as_stack(rnn)
    if isinstance(encoder, nn.Linear) and input_size is None:
        input_size = encoder.in_features
    stack = Stack(list(base.cells), encoder, decoder, batch_first=base.batch_first,
                  input_size=input_size if encoder is not None else base.input_size)
    stack.source = getattr(base, "source", rnn)
    return stack
