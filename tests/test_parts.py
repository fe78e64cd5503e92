"""lsc.measure / lsc.pretrain on models people write: the recurrent parts found by running
the model's own forward, measured on what they receive, pre-trained without touching
anything else (lsc.parts)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lsc


class LM(nn.Module):
    """Embedding -> nn.LSTM(3 layers, dropout) -> Linear: a user's language model."""

    def __init__(self, vocab: int = 30, emb: int = 16, width: int = 48, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, width, num_layers=layers, batch_first=True, dropout=0.1)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


class Seq2Seq(nn.Module):
    """Two recurrent parts, one nested: encoder.rnn (GRU) and decoder (LSTM)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"proj": nn.Linear(5, 8), "rnn": nn.GRU(8, 24, num_layers=2, batch_first=True)})
        self.decoder = nn.LSTM(24, 12, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.encoder["rnn"](torch.tanh(self.encoder["proj"](x)))
        return self.decoder(h)[0]


def tokens(seed: int, batch: int = 32, T: int = 40) -> torch.Tensor:
    return torch.randint(0, 30, (batch, T), generator=torch.Generator().manual_seed(seed))


def test_a_language_model_is_measured_on_its_embedded_inputs():
    torch.manual_seed(0)
    lm = LM()
    x = tokens(1)
    report = lsc.measure(lm, x)
    assert [(e.module, e.kind, e.layer) for e in report.edges] == [
        ("lstm", "encoder", 0),
        ("lstm", "time", 0),
        ("lstm", "depth", 1),
        ("lstm", "time", 1),
        ("lstm", "depth", 2),
        ("lstm", "time", 2),
    ]
    assert report.method == "auto" and max(e.shape[0] for e in report.edges) > 64  # matrix-free, not dense
    with torch.no_grad():
        embedded = lm.embed(x)
    dense = lsc.measure(lm.lstm, embedded, estimator="dense", time_points=list(report.time_points))
    for a, b in zip(report.edges, dense.edges):
        assert abs(a.mean - b.mean) <= 0.02 * b.mean, (a, b)
    assert "lstm  time" in str(report)  # the table names the part


def test_pretraining_a_language_model_changes_only_its_lstm():
    torch.manual_seed(0)
    lm = LM()
    keys = list(lm.state_dict())
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    res = lsc.pretrain(
        lm, tokens(1, batch=64), target=0.5, kinds=["time", "depth"], tol=0.05, max_steps=200, progress=False
    )
    assert res.converged and res.message.startswith("pre-trained lstm (LSTM) of the LM")
    assert {e.module for e in res.report.edges} == {"lstm"}
    check = lsc.measure(lm, tokens(99), estimator="dense", target=0.5, kinds=["time", "depth"])
    assert max(abs(g) for g in check.gaps()) <= 0.05
    assert type(lm) is LM and list(lm.state_dict()) == keys and set(vars(lm)["_modules"]) == {"embed", "lstm", "head"}
    after = lm.state_dict()
    for k in keys:
        assert torch.equal(before[k], after[k]) != k.startswith("lstm."), k  # the LSTM's weights moved, nothing else
    again = LM()
    again.load_state_dict(before)  # a checkpoint saved before loads after
    assert lm.training  # the model's mode is left as it was


def test_parts_are_named_by_their_qualified_names_and_pretrained_one_at_a_time():
    torch.manual_seed(0)
    model = Seq2Seq()
    x = torch.randn(16, 20, 5)
    report = lsc.measure(model, x, target=0.5)
    assert [(e.module, e.kind) for e in report.edges][:3] == [
        ("encoder.rnn", "encoder"),
        ("encoder.rnn", "time"),
        ("encoder.rnn", "depth"),
    ]
    assert [(e.module, e.kind) for e in report.edges][-2:] == [("decoder", "encoder"), ("decoder", "time")]
    with torch.no_grad():
        h = model.encoder["rnn"](torch.tanh(model.encoder["proj"](x)))[0]
    direct = lsc.measure(model.decoder, h, target=0.5)  # each part chooses its own time points
    assert [e.mean for e in report.edges if e.module == "decoder"] == pytest.approx([e.mean for e in direct.edges])
    both = lsc.pretrain(model, x, target=0.5, kinds=["time"], max_steps=2, progress=False)  # every part, in order
    assert list(both.parts) == ["encoder.rnn", "decoder"] and both.steps == 4 and both.stopped == "max_steps"
    assert not both.converged and [e.module for e in both.report.edges] == ["encoder.rnn"] * 2 + ["decoder"]
    assert [r.steps for r in both.parts.values()] == [2, 2]
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    loader = [(x[:8], None), (x[8:], None)]  # (inputs, targets) batches, as a DataLoader gives
    res = lsc.pretrain(model, loader, part="encoder.rnn", target=0.5, kinds=["time"], max_steps=3, progress=False)
    assert res.steps == 3 and {e.module for e in res.report.edges} == {"encoder.rnn"}
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())
    with pytest.raises(ValueError, match=r"no recurrent part 'rnn'.*encoder\.rnn, decoder"):
        lsc.pretrain(model, x, part="rnn", max_steps=1, progress=False)
    with pytest.raises(ValueError, match="a LSTM is pre-trained as a whole"):
        lsc.pretrain(model.decoder, h, part="decoder", max_steps=1, progress=False)


def test_a_model_without_recurrence_is_refused_with_what_to_do():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(TypeError, match=r"found no recurrence in a Sequential.*lsc\.view"):
        lsc.measure(mlp, torch.randn(3, 4))
    with pytest.raises(ValueError, match="pass data"):
        lsc.pretrain(LM(), None, max_steps=1, progress=False)


class Bidirectional(nn.Module):
    def __init__(self, layers: int, kind: type[nn.RNNBase] = nn.LSTM, lengths: list[int] | None = None) -> None:
        super().__init__()
        self.rnn = kind(3, 24, num_layers=layers, batch_first=True, bidirectional=True)
        self.lengths = lengths

    def forward(self, x):
        if self.lengths is not None:
            x = nn.utils.rnn.pack_padded_sequence(x, self.lengths, batch_first=True, enforce_sorted=False)
        return self.rnn(x)[0]


def _direction(module: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNBase:
    """A unidirectional copy of one layer and direction of ``module`` (torch's own weights)."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w = getattr(module, "weight_ih" + sfx)
    one = type(module)(w.shape[1], module.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(one, name + "_l0").copy_(getattr(module, name + sfx))
    return one


def test_a_bidirectional_lstm_is_measured_one_direction_and_layer_at_a_time():
    """Each direction's time edge against torch's own unidirectional module on the input
    that direction really sees: the reverse one on reversed time; layer 1 on both
    directions' layer-0 outputs, as torch's bidirectional layer computes them."""
    torch.manual_seed(0)
    model = Bidirectional(2)
    x = torch.randn(8, 30, 3)
    report = lsc.measure(model, x, estimator="arnoldi", kinds=["time", "encoder", "depth"], time_points=[4, 17, 29])
    layers = (("rnn/l0", 0, "encoder"), ("rnn/l0/reverse", 0, "encoder"), ("rnn/l1", 1, "depth"))
    layers += (("rnn/l1/reverse", 1, "depth"),)
    assert [(e.module, e.kind, e.layer) for e in report.edges] == [
        (m, k, layer) for m, layer, first in layers for k in (first, "time")
    ]  # one deep stack: layer 1 reads both directions of layer 0 through its depth edge
    assert report.target == {"encoder": 0.5, "time": 0.5, "depth": 0.5}  # auto: 0.5, as for any deep stack
    first = nn.LSTM(3, 24, batch_first=True, bidirectional=True)
    first.load_state_dict({k: v for k, v in model.rnn.state_dict().items() if "_l0" in k})
    with torch.no_grad():
        below = first(x)[0]  # (B, T, 2H): torch's layer 0, both directions
    for layer, seq in ((0, x), (1, below)):
        for reverse in (False, True):
            one = _direction(model.rnn, layer, reverse)
            dense = lsc.measure(
                one, seq.flip(1) if reverse else seq, estimator="dense", kinds=["time"], time_points=[4, 17, 29]
            )
            name = f"rnn/l{layer}" + ("/reverse" if reverse else "")
            got = next(e.mean for e in report.edges if e.module == name and e.kind == "time")
            assert got == pytest.approx(dense.edges[0].mean, rel=0.02), name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lsc.pretrain(model, x, part="rnn/l0/reverse", target=0.5, kinds=["time"], max_steps=3, progress=False)
    assert res.steps == 3 and {e.module for e in res.report.edges} == {"rnn/l0/reverse"}
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("rnn.") and k.endswith("_l0_reverse") for k in moved), moved


def test_a_packed_bidirectional_gru_reverses_each_sequence_within_its_length():
    torch.manual_seed(0)
    model = Bidirectional(1, nn.GRU, lengths=[3, 50])
    x = torch.randn(2, 50, 3)
    x[0, 3:] = 1e3  # padding: read by neither direction
    opts = dict(kinds=["time"], estimator="dense", time_points="all")
    both = lsc.measure(model, x, **opts)
    reverse = next(e for e in both.edges if e.module == "rnn/reverse")
    one = _direction(model.rnn, 0, True)
    short = lsc.measure(one, x[:1, :3].flip(1), **opts).edges[0]
    long = lsc.measure(one, x[1:].flip(1), **opts).edges[0]
    assert reverse.count == 3 + 50
    assert reverse.mean == pytest.approx((3 * short.mean + 50 * long.mean) / 53)


class CellLoop(nn.Module):
    """Two nn.LSTMCell (or GRUCell) stepped in the user's forward; time-first input."""

    def __init__(self, kind: type[nn.Module] = nn.LSTMCell, width: int = 48) -> None:
        super().__init__()
        self.cells = nn.ModuleList([kind(5, width), kind(width, width)])
        self.head = nn.Linear(width, 3)
        self.skip = False  # a loop that hands a cell the wrong state

    def forward(self, x):  # x: (T, B, 5)
        states: list[object] = [None, None]
        for t in range(x.shape[0]):
            inp = x[t]
            for i, cell in enumerate(self.cells):
                given = None if (self.skip and t == 2) else states[i]
                states[i] = cell(inp, hx=given) if i else cell(inp, given)  # hx by keyword too
                inp = states[i][0] if isinstance(states[i], tuple) else states[i]
        return self.head(inp)


def _visited(model: CellLoop, x: torch.Tensor) -> list[list[tuple[torch.Tensor, object]]]:
    """(input, state given) of every cell at every step, by running the loop by hand."""
    out: list[list[tuple[torch.Tensor, object]]] = [[], []]
    states: list[object] = [None, None]
    with torch.no_grad():
        for t in range(x.shape[0]):
            inp = x[t]
            for i, cell in enumerate(model.cells):
                out[i].append((inp, states[i]))
                states[i] = cell(inp, states[i])
                inp = states[i][0] if isinstance(states[i], tuple) else states[i]
    return out


def _radius(matrix: torch.Tensor) -> float:
    return float(torch.linalg.eigvals(matrix.double()).abs().max())


@pytest.mark.parametrize("kind", [nn.LSTMCell, nn.GRUCell])
def test_a_loop_of_cells_has_time_edges_at_the_visited_states_and_its_depth_edge(kind):
    torch.manual_seed(0)
    model = CellLoop(kind)
    x = torch.randn(10, 4, 5)  # time first: the loop steps x[t]
    points = [2, 6, 9]
    report = lsc.measure(model, x, estimator="arnoldi", kinds=["time", "depth"], time_points=points)
    assert [(e.module, e.kind, e.layer) for e in report.edges] == [
        ("cells", "time", 0),
        ("cells", "depth", 1),
        ("cells", "time", 1),
    ]
    visited = _visited(model, x)
    lstm = kind is nn.LSTMCell
    width = 48

    def step(cell, inp, state):  # the cell on lsc's state layout: [h; c] for an LSTM cell
        out = cell(inp, (state[:width], state[width:]) if lstm else state)
        return torch.cat(out) if lstm else out

    def full(state):
        if state is None:
            return torch.zeros(2 * width if lstm else width)
        return torch.cat(state, dim=-1) if lstm else state

    time0, time1, depth = [], [], []
    for t in points:
        for b in range(4):
            for i, rows in ((0, time0), (1, time1)):
                inp, state = visited[i][t]
                s = full(state)[b] if state is not None else full(None)
                rows.append(
                    _radius(
                        torch.autograd.functional.jacobian(
                            lambda z, i=i, inp=inp, b=b: step(model.cells[i], inp[b], z), s
                        )
                    )
                )
            below, _ = visited[1][t]  # cell 1's input at step t: cell 0's h_t
            s0 = torch.cat([below[b], torch.zeros(width)]) if lstm else below[b]  # c^0_t does not reach cell 1
            given = full(visited[1][t][1])[b] if visited[1][t][1] is not None else full(None)

            def through(z, given=given):  # s^1_t as a function of s^0_t, through cell 0's output h = z[:width]
                return step(model.cells[1], z[:width], given)

            depth.append(_radius(torch.autograd.functional.jacobian(through, s0)))
    means = {(e.kind, e.layer): e.mean for e in report.edges}
    assert means[("time", 0)] == pytest.approx(sum(time0) / len(time0), rel=0.02)
    assert means[("time", 1)] == pytest.approx(sum(time1) / len(time1), rel=0.02)
    assert means[("depth", 1)] == pytest.approx(sum(depth) / len(depth), rel=0.02)


def test_a_loop_of_cells_is_pretrained_in_place_and_an_irregular_loop_is_refused():
    torch.manual_seed(0)
    model = CellLoop(nn.GRUCell, width=32)
    keys = list(model.state_dict())
    head = model.head.weight.detach().clone()
    x = torch.randn(20, 64, 5)
    res = lsc.pretrain(
        model, x, target=0.5, kinds=["time", "depth"], tol=0.05, max_steps=150, batch_size=16, progress=False
    )  # batches cut along the samples axis (1) of a time-first input
    assert res.converged, res.message
    check = lsc.measure(model, torch.randn(20, 16, 5), estimator="dense", target=0.5, kinds=["time", "depth"])
    assert max(abs(g) for g in check.gaps()) <= 0.05
    assert list(model.state_dict()) == keys and torch.equal(head, model.head.weight)
    model.skip = True
    with pytest.raises(ValueError, match=r"cells.0 \(GRUCell\) is not stepped as one recurrence"):
        lsc.measure(model, x[:, :4])


def test_padded_and_packed_batches_use_only_time_points_inside_each_length():
    """Lengths 3 and 50: the short sequence counts at its 3 steps only, and the radii are
    those of the two sequences measured alone (its states never saw the padding)."""
    torch.manual_seed(0)
    gru = nn.GRU(3, 8, num_layers=2, batch_first=True)
    x = torch.randn(2, 50, 3)
    x[0, 3:] = 1e3  # padding that would show if it were read
    opts = dict(kinds=["time", "depth"], estimator="dense", time_points="all", target=0.5)
    padded = lsc.measure(gru, x, lengths=[3, 50], **opts)
    short = lsc.measure(gru, x[:1, :3], **opts)
    long = lsc.measure(gru, x[1:], **opts)
    for p, s, lo in zip(padded.edges, short.edges, long.edges):
        assert p.count == 3 + 50
        assert p.mean == pytest.approx((3 * s.mean + 50 * lo.mean) / 53)
        assert p.max == pytest.approx(max(s.max, lo.max)) and p.min == pytest.approx(min(s.min, lo.min))

    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = gru

        def forward(self, batch):
            packed = nn.utils.rnn.pack_padded_sequence(batch, [3, 50], batch_first=True, enforce_sorted=False)
            return self.rnn(packed)[0]

    through = lsc.measure(Packed(), x, **opts)
    assert [e.mean for e in through.edges] == pytest.approx([e.mean for e in padded.edges])
    packed = nn.utils.rnn.pack_padded_sequence(x, [3, 50], batch_first=True, enforce_sorted=False)
    assert [e.mean for e in lsc.measure(gru, packed, **opts).edges] == pytest.approx([e.mean for e in padded.edges])
    few = lsc.measure(gru, x, lengths=[3, 10])  # auto: time points inside the longest sequence
    assert max(few.time_points) < 10
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.50"):
        lsc.measure(gru, x, lengths=[0, 50])
    with pytest.raises(ValueError, match="2 integers"):
        lsc.measure(gru, x, lengths=[3])


def test_a_view_shares_the_parameters_and_adds_the_encoder_and_decoder_edges():
    torch.manual_seed(0)
    lm = LM(width=16)
    keys = list(lm.state_dict())
    v = lsc.view(lm.lstm, encoder=lm.embed, decoder=lm.head)
    lstm_params = {id(p) for p in lm.lstm.parameters()}
    assert lstm_params <= {id(p) for p in v.parameters()}
    x = tokens(3)
    report = lsc.measure(v, x, target={"time": 0.5, "depth": 0.5, "encoder": 0.5, "decoder": 1.0})
    assert next(e.kind for e in report.edges) == "encoder" and report.edges[-1].kind == "decoder"
    found = lsc.measure(lm, x, target=0.5)  # the search: the same encoder, time and depth edges
    assert [e.mean for e in report.edges[:-1]] == pytest.approx([e.mean for e in found.edges])
    before = lm.lstm.weight_hh_l0.detach().clone()
    lsc.pretrain(v, x, target=0.5, kinds=["time"], max_steps=2, progress=False)
    assert not torch.equal(before, lm.lstm.weight_hh_l0) and list(lm.state_dict()) == keys
    assert set(lm._modules) == {"embed", "lstm", "head"}


def _chain(depth: int = 12, width: int = 64) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())])


def test_a_sequential_chain_of_linear_and_tanh_has_depth_edges_that_match_autograd():
    seq = _chain()
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    report = lsc.measure(seq, x, kinds=["depth"])
    assert [e.layer for e in report.edges] == list(range(1, 12))
    h, means = x, []
    for l in range(0, 24, 2):  # by hand: each layer's Jacobian at its own input, by autograd
        layer = seq[l : l + 2]
        if l:
            J = torch.stack([torch.autograd.functional.jacobian(layer, h[b]) for b in range(32)])
            means.append(float(torch.linalg.eigvals(J).abs().amax(-1).mean()))
        with torch.no_grad():
            h = layer(h)
    assert [e.mean for e in report.edges] == pytest.approx(means, rel=0.02)


def test_a_sequential_chain_is_pretrained_to_one_and_found_inside_a_model():
    seq = _chain()
    keys = list(seq.state_dict())
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(2))
    res = lsc.pretrain(seq, x, target=1.0, kinds=["depth"], tol=0.05, max_steps=300, progress=False)
    assert res.converged
    check = lsc.measure(
        seq,
        torch.randn(64, 64, generator=torch.Generator().manual_seed(3)),
        estimator="dense",
        target=1.0,
        kinds=["depth"],
    )
    assert max(abs(g) for g in check.gaps()) <= 0.05
    assert type(seq) is nn.Sequential and list(seq.state_dict()) == keys

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = _chain(depth=3, width=16)
            self.out = nn.Linear(16, 2)

        def forward(self, x):
            return self.out(self.blocks(x))

    net = Net()
    report = lsc.measure(net, torch.randn(8, 16), kinds=["depth"])
    assert {e.module for e in report.edges} == {"blocks"} and [e.layer for e in report.edges] == [1, 2]


def test_pretraining_reads_packed_batches_up_to_their_shortest_sequence():
    """A state before the shortest length never saw padding: pre-training reads a packed
    batch (given as data, or built inside the model's forward) up to there."""
    from lsc.models import as_stack
    from lsc.pretraining.sources import InputSource

    torch.manual_seed(0)
    gru = nn.GRU(3, 16, batch_first=True)
    x = torch.randn(32, 30, 3)
    lengths = [30] * 16 + [9] * 16
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    batch = next(InputSource(as_stack(gru), packed))
    assert batch.shape == (32, 9, 3) and torch.equal(batch, x[:, :9])
    res = lsc.pretrain(gru, [packed], target=0.5, kinds=["time"], tol=0.05, max_steps=100, progress=False)
    assert res.converged, res.message

    class Packs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 16, batch_first=True)

        def forward(self, x):
            return self.rnn(
                nn.utils.rnn.pack_padded_sequence(x, lengths[: len(x)], batch_first=True, enforce_sorted=False)
            )[0]

    model = Packs()
    seen = lsc.parts.named(model, x, "rnn")
    assert seen.inputs.shape == (32, 30, 3) and seen.equal_length().shape == (32, 9, 3)
    res = lsc.pretrain(model, x, target=0.5, kinds=["time"], tol=0.05, max_steps=100, progress=False)
    assert res.converged and res.report.edges[0].module == "rnn"


def test_a_dataloader_of_dicts_says_which_entry_is_the_input():
    torch.manual_seed(0)
    lm = LM(width=16)
    batches = [{"input_ids": tokens(s, batch=16), "labels": tokens(s + 10, batch=16)} for s in range(2)]
    res = lsc.pretrain(lm, batches, input_key="input_ids", target=0.5, kinds=["time"], max_steps=2, progress=False)
    assert res.steps == 2 and res.report.edges[0].module == "lstm"
    with pytest.raises(ValueError, match=r"dicts with keys \['input_ids', 'labels'\].*input_key=<its key>"):
        lsc.pretrain(lm, batches, max_steps=1, progress=False)
    pairs = [(b["labels"], b["input_ids"]) for b in batches]  # (targets, inputs): the input is element 1
    assert lsc.pretrain(lm, pairs, input_key=1, target=0.5, kinds=["time"], max_steps=1, progress=False).steps == 1
    gru = nn.GRU(3, 8, batch_first=True)
    data = [{"x": torch.randn(4, 6, 3)}]
    assert lsc.pretrain(gru, data, input_key="x", kinds=["time"], max_steps=1, progress=False).steps == 1


def test_an_irregular_cell_loop_beside_other_parts_is_left_out_with_a_warning():
    """A seq2seq whose decoder cell starts from the encoder's state: the encoder is still
    measured, the decoder loop is named in a warning (alone, it would be refused)."""

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.GRU(3, 8, batch_first=True)
            self.decoder = nn.GRUCell(3, 8)

        def forward(self, x):
            _, h = self.encoder(x)
            h = h[0]
            for t in range(4):
                h = self.decoder(x[:, t], h)
            return h

    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"decoder \(GRUCell\) starts its loop from a non-zero state.*left out"):
        report = lsc.measure(Seq(), torch.randn(5, 10, 3), kinds=["time"])
    assert {e.module for e in report.edges} == {"encoder"}
