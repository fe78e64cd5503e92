"""Issue 25: a model whose forward takes several arguments, fed the way practitioners feed
it, works with no wrapper in measure, pretrain, Monitor and the command line; a deep
bidirectional module is one deep stack (depth edges between its layers, ``auto`` 0.5)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

import lsc
from lsc.cli import main

CLASSIFIER = """
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class Classifier(nn.Module):
    '''A 2-layer bidirectional GRU classifier that packs its padded batch inside forward.'''

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(5, 16, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 3)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(torch.cat([h[-2], h[-1]], dim=-1))


def make():
    return Classifier()


def call(model, batch):
    x, lengths, _ = batch
    return model(x, lengths=lengths)
"""

NAMES = ["gru/l0", "gru/l0/reverse", "gru/l1", "gru/l1/reverse"]


@pytest.fixture
def user(tmp_path, monkeypatch):
    (tmp_path / "classifier.py").write_text(CLASSIFIER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import classifier

    return classifier


def batch(seed: int, n: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, 5, generator=gen)
    lengths = torch.randint(10, 21, (n,), generator=gen)
    return x, lengths, torch.randint(0, 3, (n,), generator=gen)


def test_a_forward_x_lengths_classifier_is_measured_and_pretrained_with_no_wrapper(user):
    torch.manual_seed(0)
    model = user.make()
    loader = DataLoader(TensorDataset(*batch(1, 256)), batch_size=32)
    first = next(iter(loader))
    report = lsc.measure(model, first, input_key=(0, 1))
    assert [(e.module, e.kind, e.layer) for e in report.edges] == [
        (n, k, layer) for n, layer in zip(NAMES, (0, 0, 1, 1)) for k in ("encoder" if layer == 0 else "depth", "time")
    ]
    assert report.target == {"encoder": 0.5, "time": 0.5, "depth": 0.5}  # auto at the module's depth, 2
    same = lsc.measure(model, first, forward=user.call)
    assert [e.mean for e in same.edges] == [e.mean for e in report.edges]

    result = lsc.pretrain(model, loader, input_key=(0, 1), progress=False)  # no part=: every part, in order
    assert list(result.parts) == NAMES and result.converged, result.message
    assert result.target == {"time": 0.5, "depth": 0.5}  # a user model's default kinds: time and depth
    fresh = lsc.measure(model, batch(99), input_key=(0, 1), estimator="dense", kinds=["time", "depth"])
    assert [(e.module, e.kind) for e in fresh.edges] == [
        (n, k) for n in NAMES for k in (("time",) if n.startswith("gru/l0") else ("depth", "time"))
    ]
    assert max(abs(g) for g in fresh.gaps()) <= 0.05, fresh

    monitor = lsc.Monitor(model, first, every=1, input_key=(0, 1), kinds=["time", "depth"])
    seen = monitor(0)
    assert seen is not None and {e.module for e in seen.edges} == set(NAMES)
    assert max(abs(g) for g in seen.gaps()) <= 0.05


@pytest.mark.filterwarnings("default::lsc.pretraining.NotConvergedWarning")  # shown, as outside the tests
def test_the_command_line_calls_a_users_forward_with_several_arguments(user, tmp_path, capsys):
    torch.save(batch(1, 64), tmp_path / "batch.pt")  # (x, lengths, y), as a DataLoader yields it
    common = ["--model", "classifier:make", "--inputs", str(tmp_path / "batch.pt"), "--seed", "0"]
    assert main(["measure", *common, "--input-key", "0,1", "--json"]) == 0
    by_key = json.loads(capsys.readouterr().out)
    assert [e["module"] for e in by_key["edges"]][::2] == NAMES and by_key["target"]["depth"] == 0.5
    assert main(["measure", *common, "--forward", "classifier:call", "--json"]) == 0
    by_forward = json.loads(capsys.readouterr().out)
    assert [e["mean"] for e in by_forward["edges"]] == [e["mean"] for e in by_key["edges"]]

    out = tmp_path / "run"
    args = ["pretrain", *common, "--input-key", "0,1", "--out", str(out), "--max-steps", "2", "--batch", "16"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "lsc pretrain: warning: pre-training did not converge (max_steps after 8 steps" in err  # 2 per part
    assert "Try: raise max_steps (now 2)" in err and "Traceback" not in err
    model = user.make()
    model.load_state_dict(torch.load(out / "pretrained.pt"))  # the user's own state_dict
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("part-")) == [
        "part-" + n.replace("/", "-") for n in sorted(NAMES)
    ]  # each part resumable from its own checkpoint
    assert main([*args[:-4], "--max-steps", "3", "--batch", "16"]) == 0  # a larger budget: each part carries on
    assert "did not converge (max_steps after 12 steps" in capsys.readouterr().err
    assert main([*args[:-4], "--max-steps", "1", "--batch", "16", "--force"]) == 0  # afresh: every part's too
    assert "did not converge (max_steps after 4 steps" in capsys.readouterr().err


def test_pretraining_that_misses_warns_naming_the_edges_and_what_to_try(user):
    torch.manual_seed(0)
    model = user.make()
    with pytest.warns(lsc.pretraining.NotConvergedWarning) as caught:
        result = lsc.pretrain(model, [batch(1, 32)], input_key=(0, 1), kinds=["time"], max_steps=1, progress=False)
    assert not result.converged and result.stopped == "max_steps"
    message = str(caught[0].message)
    assert message.startswith("pre-training did not converge (max_steps after 4 steps")
    assert "gru/l0 time 0: " in message and "raise max_steps (now 1)" in message


def test_a_stack_is_called_on_its_tensor_and_says_so_when_given_a_forward():
    gru = nn.GRU(5, 8, batch_first=True)
    x = torch.randn(4, 10, 5)
    assert lsc.measure(gru, (x, None), input_key=0).edges  # an (inputs, targets) item: its inputs
    with pytest.raises(ValueError, match=r"say how to call a larger model; a GRU is measured on its input tensor"):
        lsc.measure(gru, x, forward=lambda m, b: m(b))
    with pytest.raises(ValueError, match=r"a GRU is pre-trained on its input tensors themselves"):
        lsc.pretrain(gru, x, input_key=(0, 1), max_steps=1)
    packed = pack_padded_sequence(x, [10, 9, 8, 7], batch_first=True)
    assert lsc.measure(gru, packed).edges  # a packed batch keeps working


class GRUIntoLSTM(nn.Module):
    """A one-layer GRU feeding a 2-layer LSTM: auto is 1 for the first, 0.5 for the second."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(5, 8, batch_first=True)
        self.lstm = nn.LSTM(8, 8, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.lstm(self.gru(x)[0])[0]


def test_parts_and_kinds_that_do_not_meet_are_skipped_named_and_kept_apart(tmp_path):
    """Review of issue 25: a kind only some layers have pre-trains those layers; a target
    naming only the time edge suits a one-layer bidirectional module; a miss across parts
    that resolve auto apart still names its edges; part= runs keep their own checkpoints."""
    torch.manual_seed(0)
    x = torch.randn(8, 12, 5)
    bi = nn.GRU(5, 8, num_layers=2, batch_first=True, bidirectional=True)
    only_depth = lsc.pretrain(bi, x, kinds=("depth",), max_steps=1, progress=False)
    assert list(only_depth.parts) == ["l1", "l1/reverse"] and {e.kind for e in only_depth.report.edges} == {"depth"}

    one = nn.GRU(5, 8, batch_first=True, bidirectional=True)
    res = lsc.pretrain(one, x, target={"time": 0.9}, max_steps=1, progress=False)
    assert list(res.parts) == ["", "reverse"] and res.target == {"time": 0.9}
    assert res.message.startswith("pre-trained the forward direction of the GRU")

    with pytest.warns(lsc.pretraining.NotConvergedWarning, match=r"off target: gru time 0: .*lstm time 1: "):
        apart = lsc.pretrain(GRUIntoLSTM(), x, max_steps=1, tol=1e-6, progress=False)
    assert (
        apart.report is None and apart.parts["gru"].target["time"] == 1.0 and apart.parts["lstm"].target["time"] == 0.5
    )

    first = lsc.pretrain(bi, x, part="l0", kinds=["time"], max_steps=2, checkpoint=tmp_path, progress=False)
    other = lsc.pretrain(bi, x, part="l0/reverse", kinds=["time"], max_steps=2, checkpoint=tmp_path, progress=False)
    assert first.steps == other.steps == 2 and len(other.history) == 2  # not a resume of l0's run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-l0", "part-l0-reverse"]


class CellIntoLSTM(nn.Module):
    """An LSTMCell stepped in a loop, its outputs read by an nn.LSTM defined before it."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.cell = nn.LSTMCell(5, 8)

    def forward(self, x):
        state, outs = None, []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outs.append(state[0])
        return self.lstm(torch.stack(outs, dim=1))[0]


def test_parts_are_pretrained_in_the_order_data_reaches_them_cell_loops_included():
    torch.manual_seed(0)
    res = lsc.pretrain(CellIntoLSTM(), torch.randn(8, 12, 5), kinds=["time"], max_steps=1, progress=False)
    assert list(res.parts) == ["cell", "lstm"]  # the loop first: the LSTM reads what it gives
