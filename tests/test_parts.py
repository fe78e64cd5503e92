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
        ("lstm", "encoder", 0), ("lstm", "time", 0), ("lstm", "depth", 1), ("lstm", "time", 1), ("lstm", "depth", 2),
        ("lstm", "time", 2)]
    assert report.method == "auto" and max(e.shape[0] for e in report.edges) > 64  # matrix-free, not dense
    with torch.no_grad():
        embedded = lm.embed(x)
    dense = lsc.measure(lm.lstm, embedded, method="dense", time_points=list(report.time_points))
    for a, b in zip(report.edges, dense.edges):
        assert abs(a.mean - b.mean) <= 0.02 * b.mean, (a, b)
    assert "lstm  time" in str(report)  # the table names the part


def test_pretraining_a_language_model_changes_only_its_lstm():
    torch.manual_seed(0)
    lm = LM()
    keys = list(lm.state_dict())
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    res = lsc.pretrain(lm, tokens(1, batch=64), target=0.5, kinds=["time", "depth"], tol=0.05, max_steps=200,
                       progress=False)
    assert res.converged and res.message.startswith("pre-trained lstm (LSTM) of the LM")
    assert {e.module for e in res.report.edges} == {"lstm"}
    check = lsc.measure(lm, tokens(99), method="dense", target=0.5, kinds=["time", "depth"])
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
    assert [(e.module, e.kind) for e in report.edges][:3] == [("encoder.rnn", "encoder"), ("encoder.rnn", "time"),
                                                              ("encoder.rnn", "depth")]
    assert [(e.module, e.kind) for e in report.edges][-2:] == [("decoder", "encoder"), ("decoder", "time")]
    with torch.no_grad():
        h = model.encoder["rnn"](torch.tanh(model.encoder["proj"](x)))[0]
    direct = lsc.measure(model.decoder, h, target=0.5)  # each part chooses its own time points
    assert [e.mean for e in report.edges if e.module == "decoder"] == pytest.approx([e.mean for e in direct.edges])
    with pytest.raises(ValueError, match=r"2 recurrent parts \(encoder.rnn, decoder\).*part=<name>"):
        lsc.pretrain(model, x, target=0.5, max_steps=1, progress=False)
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    loader = [(x[:8], None), (x[8:], None)]  # (inputs, targets) batches, as a DataLoader gives
    res = lsc.pretrain(model, loader, part="encoder.rnn", target=0.5, kinds=["time"], max_steps=3, progress=False)
    assert res.steps == 3 and {e.module for e in res.report.edges} == {"encoder.rnn"}
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())
    with pytest.raises(ValueError, match="no recurrent part 'rnn'.*encoder.rnn, decoder"):
        lsc.pretrain(model, x, part="rnn", max_steps=1, progress=False)
    with pytest.raises(ValueError, match="a LSTM is pre-trained as a whole"):
        lsc.pretrain(model.decoder, h, part="decoder", max_steps=1, progress=False)


def test_a_model_without_recurrence_is_refused_with_what_to_do():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(TypeError, match="found no recurrence in a Sequential.*lsc.view"):
        lsc.measure(mlp, torch.randn(3, 4))
    with pytest.raises(ValueError, match="pass data"):
        lsc.pretrain(LM(), None, max_steps=1, progress=False)


def test_bidirectional_and_packed_parts_are_refused_clearly():
    class Bi(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True, bidirectional=True)

        def forward(self, x):
            return self.rnn(x)[0]

    with pytest.raises(ValueError, match="rnn is a bidirectional GRU"):
        lsc.measure(Bi(), torch.randn(2, 5, 3))

    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True)

        def forward(self, x):
            packed = nn.utils.rnn.pack_padded_sequence(x, [5, 3], batch_first=True)
            return self.rnn(packed)[0]

    with pytest.raises(ValueError, match="receives a PackedSequence: pre-training reads equal-length"):
        lsc.pretrain(Packed(), torch.randn(2, 5, 3), max_steps=1, progress=False)


def test_padded_and_packed_batches_use_only_time_points_inside_each_length():
    """Lengths 3 and 50: the short sequence counts at its 3 steps only, and the radii are
    those of the two sequences measured alone (its states never saw the padding)."""
    torch.manual_seed(0)
    gru = nn.GRU(3, 8, num_layers=2, batch_first=True)
    x = torch.randn(2, 50, 3)
    x[0, 3:] = 1e3  # padding that would show if it were read
    opts = dict(kinds=["time", "depth"], method="dense", time_points="all", target=0.5)
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
    with pytest.raises(ValueError, match="lengths must lie in 1..50"):
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
    assert [e.kind for e in report.edges][0] == "encoder" and report.edges[-1].kind == "decoder"
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
    check = lsc.measure(seq, torch.randn(64, 64, generator=torch.Generator().manual_seed(3)), method="dense",
                        target=1.0, kinds=["depth"])
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
