"""Cells, stacks and adapters: same map in every form, and torch.func works on every cell."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import jacfwd, jacrev, jvp, vjp, vmap

from lsc.models import StackedRNN, adapt_torch_rnn, as_stack, make_cell

from .helpers import CELL_KINDS, random_cell

CELL_NAMES = [
    ("lstm", {}),
    ("lstm", {"proj_size": 5}),
    ("gru", {}),
    ("elman", {"nonlinearity": "tanh"}),
    ("elman", {"nonlinearity": "relu"}),
    ("elman", {"nonlinearity": "sigmoid"}),
    ("alif", {}),
    ("alifb", {}),
    ("lru", {}),
]


@pytest.mark.parametrize("cell,opts", CELL_NAMES)
def test_fast_forward_equals_step_loop(cell, opts):
    torch.manual_seed(0)
    model = StackedRNN(cell, input_size=4, hidden_size=[9, 11, 10], output_size=3, **opts).double()
    x = torch.randn(5, 13, 4, dtype=torch.float64)
    fast, states = model(x, return_states=True)
    slow = super(StackedRNN, model).forward(x)  # the generic step-by-step Stack.forward
    torch.testing.assert_close(fast, slow)
    s = model.init_states(5, dtype=torch.float64)
    for t in range(13):
        y, s = model.step(x[:, t], s)
    torch.testing.assert_close(y, fast[:, -1])
    for a, b in zip(s, states):
        torch.testing.assert_close(a, b)


def test_token_input_goes_through_an_embedding():
    torch.manual_seed(0)
    model = StackedRNN("gru", input_size=6, hidden_size=8, num_layers=2, output_size=20, vocab_size=20)
    tokens = torch.randint(0, 20, (3, 7))
    out = model(tokens)
    assert out.shape == (3, 7, 20)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 20\)"):
        model(torch.full((3, 7), 20))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.randn(3, 7, 6))


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(lambda: nn.LSTM(4, 10, num_layers=3, batch_first=True), id="lstm3"),
        pytest.param(lambda: nn.LSTM(4, 10, num_layers=2), id="lstm-time-first"),
        pytest.param(lambda: nn.LSTM(4, 10, num_layers=2, bias=False, batch_first=True), id="lstm-nobias"),
        pytest.param(lambda: nn.LSTM(4, 10, num_layers=2, proj_size=6, batch_first=True), id="lstm-proj"),
        pytest.param(lambda: nn.GRU(4, 10, num_layers=2, batch_first=True), id="gru"),
        pytest.param(lambda: nn.RNN(4, 10, num_layers=2, nonlinearity="relu", batch_first=True), id="rnn-relu"),
        pytest.param(lambda: nn.RNN(4, 10, num_layers=1, batch_first=False), id="rnn-tanh"),
    ],
)
def test_adapter_reproduces_the_users_module(module):
    torch.manual_seed(0)
    m = module().double()
    x = torch.randn(6, 5, 4, dtype=torch.float64)
    stack = as_stack(m)
    torch.testing.assert_close(stack(x), m(x)[0])


@pytest.mark.parametrize("module", [nn.LSTMCell(4, 7), nn.GRUCell(4, 7), nn.RNNCell(4, 7, nonlinearity="relu")])
def test_adapter_for_single_cells(module):
    stack = as_stack(module)
    x = torch.randn(3, 4)
    s = stack.init_states(3)
    y, _ = stack.step(x, s)
    ref = module(x)
    ref = ref[0] if isinstance(ref, tuple) else ref
    torch.testing.assert_close(y, ref)


def test_adapter_shares_parameters_without_copies():
    m = nn.LSTM(4, 10, num_layers=3, batch_first=True)
    stack = adapt_torch_rnn(m)
    ids = {id(p) for p in m.parameters()}
    assert {id(p) for p in stack.parameters()} == ids
    assert stack.cells[2].weight_hh is m.weight_hh_l2
    with torch.no_grad():
        stack.cells[1].weight_hh.mul_(0.0)
    assert float(m.weight_hh_l1.abs().sum()) == 0.0


def test_bidirectional_and_unknown_modules_are_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        as_stack(nn.GRU(4, 8, bidirectional=True))
    with pytest.raises(TypeError, match="cannot see the recurrence of a Linear"):
        as_stack(nn.Linear(4, 8))


def test_unknown_cell_and_option_names():
    with pytest.raises(ValueError, match=r"unknown cell 'lstn'\. Did you mean 'lstm'"):
        StackedRNN("lstn", input_size=3, hidden_size=4)
    with pytest.raises(ValueError, match="does not take option"):
        StackedRNN("gru", input_size=3, hidden_size=4, nonlinearity="relu")
    with pytest.raises(ValueError, match="unknown Elman nonlinearity 'tanhh'"):
        StackedRNN("elman", input_size=3, hidden_size=4, nonlinearity="tanhh")
    with pytest.raises(ValueError, match="num_layers must be >= 1"):
        StackedRNN("gru", input_size=3, hidden_size=4, num_layers=0)


def test_input_shape_errors_name_the_problem():
    model = StackedRNN("lstm", input_size=8, hidden_size=16, num_layers=2)
    with pytest.raises(ValueError, match="input has 5 features but the model's first layer takes 8"):
        model(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"x.unsqueeze\(0\)"):
        model(torch.randn(3, 8))
    with pytest.raises(ValueError, match="non-finite"):
        model(torch.full((2, 3, 8), float("nan")))


@pytest.mark.parametrize("kind,opts", CELL_KINDS)
def test_torch_func_transforms_work_on_every_cell(kind, opts):
    cell = random_cell(kind, opts, width=7)
    x = torch.randn(3, cell.input_size, dtype=torch.float64)
    s = torch.randn(3, cell.state_size, dtype=torch.float64) * 0.3
    f = lambda st: cell.transition(x, st)  # noqa: E731
    single = lambda xi, si: cell.transition(xi[None], si[None])[0]  # noqa: E731
    J_rev = vmap(jacrev(single, argnums=1))(x, s)
    J_fwd = vmap(jacfwd(single, argnums=1))(x, s)
    torch.testing.assert_close(J_rev, J_fwd)
    v = torch.randn_like(s)
    _, jv = jvp(f, (s,), (v,))
    torch.testing.assert_close(jv, torch.einsum("bmn,bn->bm", J_rev, v))
    _, pullback = vjp(f, s)
    u = torch.randn(3, cell.state_size, dtype=torch.float64)
    torch.testing.assert_close(pullback(u)[0], torch.einsum("bmn,bm->bn", J_rev, u))
    y, new = vmap(lambda xi, si: cell(xi[None], si[None]))(x, s)
    ref_y, ref_new = cell(x, s)
    torch.testing.assert_close(new[:, 0], ref_new)
    torch.testing.assert_close(y[:, 0], ref_y)


def test_make_cell_builds_registered_kinds():
    assert make_cell("gru", 3, 5).state_size == 5
    assert make_cell("lstm", 3, 5).state_size == 10
    assert make_cell("lstm", 3, 5, proj_size=2).state_size == 7


def test_registered_cells_become_available_by_name():
    from lsc.models import cell_names, register_cell
    from lsc.models.registry import _CELLS

    register_cell("elman_relu_test", lambda i, h, bias=True: make_cell("elman", i, h, bias=bias, nonlinearity="relu"))
    try:
        assert "elman_relu_test" in cell_names()
        model = StackedRNN("elman_relu_test", input_size=3, hidden_size=5, num_layers=2)
        assert model.cells[1].nonlinearity == "relu"
    finally:
        del _CELLS["elman_relu_test"]


@pytest.mark.parametrize(
    "bad", [{"hidden_size": 2.5}, {"hidden_size": "64"}, {"num_layers": 2.0}, {"hidden_size": [8, 0]}]
)
def test_non_integer_sizes_are_named(bad):
    with pytest.raises(ValueError, match="must be"):
        StackedRNN(**{"cell": "gru", "input_size": 3, "hidden_size": 8, "num_layers": 2, **bad})
