"""``lsc compare``: the command line of lsc.compare."""

from __future__ import annotations

import json
import textwrap

import torch

from lsc.cli import main

MODULE = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(8, 4)
    def forward(self, x):
        return self.head(self.rnn(x)[0])

def make(seed):
    return Net()

def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 6, 3, generator=g), torch.randint(0, 4, (32, 6), generator=g)

def forward(model, item):
    return model(item[0])
"""


def test_help_runs(capsys):
    try:
        main(["compare", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "--inits" in capsys.readouterr().out


def test_compare_prints_the_table_and_writes_json_and_png(tmp_path, monkeypatch, capsys):
    (tmp_path / "cmpmodel.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.set_num_threads(1)
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--model",
            "cmpmodel:make",
            "--data",
            "cmpmodel:data",
            "--forward",
            "cmpmodel:forward",
            "--inits",
            "default,0.5,orthogonal",
            "--steps",
            "4",
            "--seeds",
            "1",
            "--batch-size",
            "8",
            "--pretrain",
            "max_steps=2",
            "--pretrain",
            "kinds=time,depth",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "verdict" in printed and "orthogonal" in printed
    saved = json.loads((out / "comparison.json").read_text())
    assert [r["init"] for r in saved["rows"]] == ["default", "0.5", "orthogonal"]
    assert (out / "comparison.png").stat().st_size > 1000


def test_bad_spec_is_one_line(capsys):
    assert main(["compare", "--model", "nocolon", "--data", "x:y"]) == 2
    assert "MODULE:FUNCTION" in capsys.readouterr().err
