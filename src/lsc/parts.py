"""The recurrent parts of any model, found by running the model's own forward once.

lsc measures and pre-trains stacks (:func:`lsc.models.as_stack`: ``torch.nn``
LSTM/GRU/RNN modules, lsc's own stacks, modules with step-protocol ``cells``). A model
people write is usually more than that: an embedding, a ``torch.nn.LSTM``, a head. For
such a model :func:`find` runs its ``forward`` on one batch, with a forward pre-hook on
every submodule a stack can be made of (the outermost ones: an ``nn.LSTM`` inside an
lsc stack is the stack's), and records the input each one really receives: an LSTM
after an embedding is measured on the embedded vectors, and its encoder edge is
∂s⁰/∂(that input) (docs/design.md section 0).

What is found: ``torch.nn.LSTM``/``GRU``/``RNN``, lsc stacks, and ``nn.Sequential``
chains of ``Linear`` layers with element-wise activations, normalisation or dropout
between them (:func:`lsc.models.ffn.linear_chain`), however deeply nested; and
``nn.LSTMCell``/``GRUCell``/``RNNCell`` stepped in a loop by the user's ``forward``
(:func:`_loops`: each cell's time edge at the states it really visits, one cell feeding
the next where its input *is* the other's output at every step). A bidirectional module
is one part per direction, the reverse direction on reversed time (``name/reverse``),
and with several layers one part per layer and direction (``name/l1/reverse``): a
layer's input mixes both directions of the layer below, so each is measured on the
input it really receives, and its input edge is the module's depth edge from both
(:attr:`Part.below`): the module is one deep stack, its target resolved at its depth
(docs/design.md section 0). What is not found: attention, convolutions; a part's
initial state is taken as zero (the hidden state a ``forward`` passes in is not read;
a cell loop that starts elsewhere is left out with a warning, or refused when it is all
the model has).
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .models import Stack, as_stack
from .models.adapters import cell_view, layer_view
from .models.ffn import linear_chain

_SEQUENCE_MODULES = (nn.RNNBase, Stack)
_CELLS = (nn.LSTMCell, nn.GRUCell, nn.RNNCell)


@dataclass(frozen=True)
class Part:
    """A recurrent submodule, named by its qualified name in the model (``"rnn"``,
    ``"encoder.lstm"``), and the input it received (in its own layout)."""

    name: str
    module: nn.Module
    inputs: Tensor
    lengths: Tensor | None = None  # of a PackedSequence input: each sequence's true length
    batch_axis: int = 0  # the axis of the model's input that holds the samples
    layer: int = 0  # a layer of a deep bidirectional module: its index there
    depth: int | None = None  # the layers of that module (None: the part's own stack)

    def kinds(self, asked: Sequence[str] | None) -> tuple[str, ...] | None:
        """The edge kinds to measure on this part for the kinds ``asked`` of its module
        (``None``: all it has): a layer above the first reads its module's depth edge
        through its own input edge, and only the first layer has the module's encoder edge."""
        if asked is None or self.depth is None:
            return None if asked is None else tuple(asked)
        if self.below:
            return tuple(k for k in asked if k not in ("encoder", "depth")) + (("encoder",) if "depth" in asked else ())
        return tuple(k for k in asked if k != "depth")

    @property
    def below(self) -> bool:
        """Whether the part's input is the layer below's output (both directions of it):
        its encoder edge is then its module's depth edge (docs/design.md section 0)."""
        return self.layer > 0

    def equal_length(self) -> Tensor:
        """The inputs cut to the shortest sequence's length: what pre-training reads of a
        packed batch (a state before that step never saw padding, in either direction;
        docs/design.md section 9)."""
        if self.lengths is None:
            return self.inputs
        return self.inputs.narrow(1 if as_stack(self.module).batch_first else 0, 0, int(self.lengths.min()))


def visible(model: nn.Module) -> bool:
    """Whether ``model`` is itself a stack lsc can see (no search needed). A module lsc
    knows but refuses raises its own message here; a bidirectional module is not one
    stack but one per direction (:func:`find`)."""
    if _bidirectional(model):
        return False
    try:
        as_stack(model)
    except TypeError:
        return False
    return True


def _bidirectional(module: nn.Module) -> bool:
    return isinstance(module, nn.RNNBase) and module.bidirectional


def _is_part(module: nn.Module) -> bool:
    if isinstance(module, _SEQUENCE_MODULES + _CELLS):
        return True
    return isinstance(module, nn.Sequential) and linear_chain(module) is not None


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost parts inside ``model`` (``model`` itself only when it is a
    bidirectional module: one part per direction)."""
    if _bidirectional(model):
        return [("", model)]
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or not _is_part(module):
            continue
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue  # inside a part already found: the part's own
        found.append((name, module))
    return found


InputKey = int | str | Sequence[int | str]
"""Which elements of a data item a model is called with (:func:`caller`)."""

Forward = Callable[[nn.Module, Any], object]
"""How to run a model on one item of the user's data: ``forward(model, item)``."""


def caller(input_key: InputKey = 0, forward: Forward | None = None) -> Forward:
    """How lsc runs a model on one data item: ``forward`` itself when given (any signature:
    ``lambda model, item: model(item[0], lengths=item[1])``); else from ``input_key``: one
    index or key calls ``model(item[key])`` (:func:`input_of`; a tensor item is the input
    itself), a tuple of indices calls ``model(item[i], item[j], ...)``, a tuple of dict keys
    calls ``model(**{k: item[k]})`` (a ``forward(x, lengths)`` classifier fed ``(x,
    lengths, y)`` batches: ``input_key=(0, 1)``)."""
    if forward is not None:
        if not callable(forward):
            raise TypeError(f"forward must be a callable forward(model, item), got {type(forward).__name__}")
        return forward
    if isinstance(input_key, (int, str)):
        key = input_key
        return lambda model, item: model(input_of(item, key))
    keys = tuple(input_key) if isinstance(input_key, (tuple, list)) else ()
    if not keys or not (all(isinstance(k, int) for k in keys) or all(isinstance(k, str) for k in keys)):
        raise ValueError(
            f"input_key must be one index or key, or a tuple of indices or of dict keys, got {input_key!r}"
        )
    if isinstance(keys[0], str):
        return lambda model, item: model(**{str(k): _element(item, k) for k in keys})
    return lambda model, item: model(*(_element(item, k) for k in keys))


def one_input(model: nn.Module, input_key: InputKey, forward: Forward | None, what: str) -> int | str:
    """``input_key`` of a stack, which is run on its input tensor itself; ``forward`` and a
    tuple of keys say how to call a larger model, so a stack given them is refused (``what``
    ends the message: how the stack takes its input)."""
    if forward is not None or not isinstance(input_key, (int, str)):
        raise ValueError(
            f"input_key={input_key!r} / forward= say how to call a larger model; a {type(model).__name__} is {what} "
            "(or input_key=<one index or key>)"
        )
    return input_key


def _element(item: object, key: int | str) -> object:
    """``item[key]`` of a tuple, list or dict item, or a clear error."""
    if isinstance(item, Mapping) and key in item:
        return item[key]
    if isinstance(item, (tuple, list)) and isinstance(key, int) and -len(item) <= key < len(item):
        return item[key]
    size = (
        f"keys {sorted(map(str, item))}"
        if isinstance(item, Mapping)
        else (f"{len(item)} elements" if isinstance(item, (tuple, list)) else f"a {type(item).__name__}")
    )
    raise ValueError(f"input_key {key!r} does not index a data item with {size}")


def first_tensor(item: object) -> Tensor | PackedSequence:
    """The first tensor of a data item (itself, or the first in a tuple, list or dict)."""
    if isinstance(item, (Tensor, PackedSequence)):
        return item
    values = item.values() if isinstance(item, Mapping) else item if isinstance(item, (tuple, list)) else ()
    for v in values:
        if isinstance(v, (Tensor, PackedSequence)):
            return v
    raise TypeError(f"a data item must hold a tensor; got a {type(item).__name__}")


def find(model: nn.Module, x: object, forward: Forward | None = None) -> list[Part]:
    """The recurrent parts of ``model`` and the inputs each receives when ``model(x)``
    (or ``forward(model, x)``, ``x`` then any data item) runs (in eval mode, without a
    graph; the model's mode is restored)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            f"a TorchScript model ({type(model).__name__}) runs compiled code lsc cannot look into or change; measure "
            "and pre-train the nn.Module you scripted (before torch.jit.script/trace), then script it again: "
            "torch.jit.script(model) after lsc.pretrain(model, data) keeps the pre-trained weights"
        )
    candidates = _candidates(model)
    if not candidates:
        raise TypeError(
            f"lsc found no recurrence in a {type(model).__name__}: it has no torch.nn.LSTM/GRU/RNN (or their cells), "
            "lsc stack or nn.Sequential chain of Linear layers and activations inside (attention and convolutions "
            "are not discovered). Pass the recurrent submodule itself, or lsc.view(rnn, encoder=..., decoder=...)."
        )
    seen: dict[str, tuple[Tensor, Tensor | None]] = {}
    calls: dict[str, list[_Call]] = {}
    first: dict[str, int] = {}  # each candidate's first call: the order data reaches them

    def pre_hook(name: str, module: nn.Module, args: tuple[object, ...]) -> None:
        first.setdefault(name, len(first))
        if name in seen:
            return  # called again in the same forward: the first call's input stands
        if not args or not isinstance(args[0], (Tensor, PackedSequence)):
            raise TypeError(
                f"{name or type(module).__name__} ({type(module).__name__}) was called without a tensor input"
            )
        if isinstance(args[0], PackedSequence):  # padded, and each sequence's length
            padded, lengths = pad_packed_sequence(args[0], batch_first=bool(getattr(module, "batch_first", True)))
            seen[name] = (padded.detach(), lengths)
        else:
            seen[name] = (args[0].detach(), None)

    def cell_hook(
        name: str, module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object], out: object
    ) -> None:
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        first.setdefault(name, len(first))
        calls.setdefault(name, []).append(_Call(_detached(x), _detached(hx), _detached(out)))

    handles = [
        m.register_forward_hook(
            lambda mod, args, kwargs, out, n=n: cell_hook(n, mod, args, kwargs, out), with_kwargs=True
        )
        if isinstance(m, _CELLS)
        else m.register_forward_pre_hook(lambda mod, args, n=n: pre_hook(n, mod, args))
        for n, m in candidates
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if forward is None:
                model(x)
            else:
                forward(model, x)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, (ValueError, TypeError)) and _raised_by_lsc(exc):
            raise
        raise ValueError(
            f"running the {type(model).__name__}'s forward on this input failed ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); lsc runs the model once to find its "
            "recurrent parts: pass an input its forward takes"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    keyed: list[tuple[int, Part]] = []
    modules = dict(candidates)
    for n in seen:
        m = modules[n]
        inputs, lengths = seen[n]
        if isinstance(m, nn.RNNBase) and _bidirectional(m):
            keyed += [(first[n], p) for p in _directions(n, m, inputs, lengths)]
        else:
            keyed.append((first[n], Part(n, m, inputs, lengths, 0 if as_stack(m).batch_first else 1)))
    if calls:
        named_by = {id(m): n for n, m in candidates}
        loops = _loops({n: (modules[n], c) for n, c in calls.items()}, first_tensor(x), others=bool(keyed))
        keyed += [(first[named_by[id(getattr(p.module, "source", None))]], p) for p in loops]
    parts = [p for _, p in sorted(keyed, key=lambda kp: kp[0])]  # stable: in the order the forward called them
    if not parts:
        names = ", ".join(n for n, _ in candidates)
        raise TypeError(
            f"the forward of a {type(model).__name__} did not call its recurrent parts ({names}) on this input"
        )
    return parts


def _raised_by_lsc(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class _Call:
    """One call of a cell in the user's loop: its input, the state it was given, its output."""

    x: object
    hx: object
    out: object


def _detached(value: object) -> object:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return tuple(_detached(v) for v in value)
    return value


def _state(value: object) -> Tensor | None:
    """A cell's state in lsc's layout: [h; c] for an LSTM cell's (h, c), else h."""
    if isinstance(value, tuple):
        return torch.cat(value, dim=-1) if value and all(isinstance(v, Tensor) for v in value) else None
    return value if isinstance(value, Tensor) else None


def _output(value: object) -> object:
    """What a cell passes on: h (the first of an LSTM cell's (h, c))."""
    return value[0] if isinstance(value, tuple) else value


def _same(a: object, b: object) -> bool:
    return (
        isinstance(a, Tensor) and isinstance(b, Tensor) and (a is b or (a.shape == b.shape and bool(torch.equal(a, b))))
    )


def _irregular(name: str, module: nn.Module, cs: list[_Call]) -> str:
    """Why a cell's calls are not one recurrence from the zero state ("" when they are)."""
    first = _state(cs[0].hx)
    if cs[0].hx is not None and (first is None or bool(first.abs().max() > 0)):
        return (
            f"{name} ({type(module).__name__}) starts its loop from a non-zero state; lsc measures a loop of cells "
            "from the zero state: pass hx=None (or zeros) at the first step"
        )
    for t in range(1, len(cs)):
        if not _same(_state(cs[t].hx), _state(cs[t - 1].out)):
            return (
                f"{name} ({type(module).__name__}) is not stepped as one recurrence: the state it is given at call "
                f"{t + 1} is not its output at call {t}. lsc measures cells looped over time, each given its own "
                "last state; measure the cell on its own (lsc.measure(cell, inputs)) otherwise"
            )
    return ""


def _loops(
    found: dict[str, tuple[nn.Module, list[_Call]]], x: Tensor | PackedSequence, others: bool = False
) -> list[Part]:
    """Cells stepped in a loop by the user's ``forward``, as stacks (docs/design.md
    section 0). Each cell must step a recurrence from the zero state (the state it is
    given at a step is its output at the one before); cell b sits on cell a when, at
    every step, b's input is a's output; a chain of such cells is one stack over their
    own parameters, measured on the first cell's inputs (the states it visits are then
    the ones the loop visited). A loop that is not such a recurrence is refused when it is
    all the model has (``others`` False), else left out with a warning."""
    problems = {name: problem for name, (module, cs) in found.items() if (problem := _irregular(name, module, cs))}
    if problems and len(problems) == len(found) and not others:
        raise ValueError(next(iter(problems.values())))
    for name, problem in problems.items():  # the model's other parts are still measured
        warnings.warn(f"{problem} ({name} is left out)", stacklevel=4)
    found = {n: v for n, v in found.items() if n not in problems}
    below = {
        b: a
        for b in found
        for a in found
        if a != b
        and len(found[a][1]) == len(found[b][1])
        and all(_same(cb.x, _output(ca.out)) for ca, cb in zip(found[a][1], found[b][1]))
    }
    parts = []
    for head in (n for n in found if n not in below):
        chain = [head]
        while True:
            nxt = [b for b, a in below.items() if a == chain[-1]]
            if len(nxt) > 1:
                raise ValueError(
                    f"{chain[-1]} feeds several cells ({', '.join(nxt)}); lsc measures cell loops that form a chain"
                )
            if not nxt:
                break
            chain.append(nxt[0])
        inputs = torch.stack([c.x for c in found[head][1]], dim=1)  # type: ignore[misc]
        stack = Stack([cell_view(found[n][0]) for n in chain], batch_first=True)
        stack.source = found[head][0]
        batch = inputs.shape[0]
        if isinstance(x, PackedSequence):  # x.dim() below: cells stepped in a loop read plain tensors
            raise TypeError(
                f"{_common(chain)}: a cell called in a loop on a PackedSequence model input is not supported"
            )
        axis = 0 if x.dim() < 2 or x.shape[0] == batch or x.shape[1] != batch else 1
        parts.append(Part(_common(chain), stack, inputs, None, axis))
    return parts


def _common(names: list[str]) -> str:
    """The qualified name the cells share (``cells`` for ``cells.0``, ``cells.1``), or
    their names joined by ``+``."""
    if len(names) == 1:
        return names[0]
    split = [n.split(".") for n in names]
    prefix = []
    for level in zip(*split):
        if len(set(level)) > 1:
            break
        prefix.append(level[0])
    return ".".join(prefix) if prefix else "+".join(names)


def _flip(x: Tensor, lengths: Tensor | None, time_axis: int) -> Tensor:
    """``x`` reversed in time, each sequence within its own length (padding stays last)."""
    if lengths is None:
        return x.flip(time_axis)
    T = x.shape[time_axis]
    t = torch.arange(T, device=x.device)
    n = lengths.to(x.device).view(-1, 1)  # (B, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, T)
    if time_axis == 0:
        index = index.t()
    index = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(time_axis, index)


def _directions(name: str, module: nn.RNNBase, x: Tensor, lengths: Tensor | None) -> list[Part]:
    """A bidirectional module as one part per direction (the reverse one on reversed
    time) and, with several layers, per layer: layer k's input is both directions'
    outputs of layer k - 1, computed here with the module's own weights."""
    time_axis = 1 if module.batch_first else 0
    axis = 1 - time_axis
    parts, inputs = [], x
    for k in range(module.num_layers):
        outputs = []
        for reverse in (False, True):
            stack = layer_view(module, k, reverse=reverse)
            seq = _flip(inputs, lengths, time_axis) if reverse else inputs
            label = "/".join(
                filter(None, [name, f"l{k}" if module.num_layers > 1 else "", "reverse" if reverse else ""])
            )
            parts.append(Part(label, stack, seq, lengths, axis, layer=k, depth=module.num_layers))
            if k < module.num_layers - 1:
                with torch.no_grad():
                    y, _ = stack.cells[0].forward_sequence(seq if module.batch_first else seq.transpose(0, 1))
                y = y if module.batch_first else y.transpose(0, 1)
                outputs.append(_flip(y, lengths, time_axis) if reverse else y)
        if outputs:
            inputs = torch.cat(outputs, dim=-1)
    return parts


def named(model: nn.Module, x: object, name: str, forward: Forward | None = None) -> Part:
    """The recurrent part called ``name`` and its input."""
    parts = find(model, x, forward)
    for p in parts:
        if p.name == name:
            return p
    raise ValueError(
        f"no recurrent part {name!r} in a {type(model).__name__}; found: {', '.join(p.name for p in parts)}"
    )


def input_of(item: object, key: int | str = 0) -> Tensor | PackedSequence:
    """The input in one item of a user's data: the item itself when it is a tensor (or a
    ``PackedSequence``), ``item[key]`` of a tuple or list (``key`` 0: ``(inputs,
    targets)`` batches) or of a dict (``key`` its name, e.g. ``"input_ids"``)."""
    if isinstance(item, (Tensor, PackedSequence)):
        return item
    if isinstance(item, Mapping):
        if key not in item:
            raise ValueError(
                f"data yields dicts with keys {sorted(map(str, item))}; say which holds the inputs: input_key=<its key>"
            )
        x = item[key]
    elif isinstance(item, (tuple, list)):
        if not item:
            raise ValueError("data yielded an empty tuple; expected (inputs, ...) or a tensor")
        if not isinstance(key, int) or not -len(item) <= key < len(item):
            raise ValueError(f"input_key={key!r} does not index a data item of {len(item)} elements")
        x = item[key]
    else:
        x = item
    if not isinstance(x, (Tensor, PackedSequence)):
        raise TypeError(
            f"data must yield tensors, (input, ...) tuples or dicts of tensors; its inputs are a {type(x).__name__}"
        )
    return x


class Through:
    """A re-iterable of what the part ``name`` receives when ``model`` runs on each item
    of ``data`` (a re-iterable of batches, tuples or dicts), called as ``call`` says
    (:func:`caller`). The model is run afresh on every item, so a part sees the inputs
    the parts before it give *now* (pre-training them changes what it receives)."""

    def __init__(self, model: nn.Module, name: str, data: Iterable[object], call: Forward) -> None:
        self.model, self.name, self.data, self.call = model, name, data, call

    def __iter__(self) -> Iterator[Tensor]:
        for item in self.data:
            yield named(self.model, item, self.name, self.call).equal_length()


def inputs_of(model: nn.Module, part: Part, data: Tensor, batch_size: int, call: Forward | None = None) -> Tensor:
    """What ``part`` receives for every sample of ``data``: the model run (as ``call``
    says) on chunks of ``batch_size`` samples along the batch axis of the model's input
    (``part.batch_axis``), joined along the part's own batch axis (packed chunks cut to
    the shortest sequence of all: :meth:`Part.equal_length`)."""
    axis = part.batch_axis
    n = data.shape[axis] if data.dim() > axis else 0
    if n == 0:
        raise ValueError(f"data is empty (shape {tuple(data.shape)}); pass at least one sample")
    chunks = [
        named(model, data.narrow(axis, i, min(batch_size, n - i)), part.name, call).equal_length()
        for i in range(0, n, batch_size)
    ]
    time_axis = 1 if as_stack(part.module).batch_first else 0
    shortest = min(c.shape[time_axis] for c in chunks)
    return torch.cat([c.narrow(time_axis, 0, shortest) for c in chunks], dim=1 - time_axis)


def view(
    rnn: nn.Module, *, encoder: nn.Module | None = None, decoder: nn.Module | None = None, input_size: int | None = None
) -> Stack:
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
    stack = Stack(
        list(base.cells),
        encoder,
        decoder,
        batch_first=base.batch_first,
        input_size=input_size if encoder is not None else base.input_size,
    )
    stack.source = getattr(base, "source", rnn)
    return stack
