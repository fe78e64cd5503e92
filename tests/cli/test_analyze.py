"""``lsc analyze``: PNG and JSON written, pre-training and checkpoints."""

from __future__ import annotations

import json

import pytest

import lsc
from lsc.models import StackedRNN

from ..analysis.helpers import needs_matplotlib, png_ok


def _cli(argv):
    """``lsc analyze ...`` through the real parser."""
    from lsc import cli

    args = cli.build_parser().parse_args(argv)
    args.argv = list(argv)
    return args.run(args)


SMALL = ["--cell", "gru", "--layers", "2", "--width", "6", "--input-size", "3", "--batch", "4", "--time", "40"]


@needs_matplotlib
@pytest.mark.parametrize("name", ["grid", "lyapunov", "smoothness", "attractors"])
def test_cli_analyze_writes_png_and_json(tmp_path, name, capsys):
    extra = {
        "lyapunov": ["--k", "4"],
        "smoothness": ["--iters", "4", "--slice-steps", "5", "--radii", "0.5,1.5"],
        "attractors": ["--n-init", "8", "--steps", "100"],
        "grid": [],
    }[name]
    assert _cli(["analyze", name, *SMALL, *extra, "--out", str(tmp_path)]) == 0
    png_ok(tmp_path / f"{name}.png")
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["model"]["class"] == "StackedRNN"
    key = {"grid": "values", "lyapunov": "exponents", "smoothness": "top", "attractors": "attractors"}[name]
    assert key in data
    assert "wrote" in capsys.readouterr().out


@needs_matplotlib
def test_cli_analyze_pretrain_and_checkpoint(tmp_path):
    assert (
        _cli(["analyze", "grid", *SMALL, "--pretrain", "0.5", "--pretrain-seconds", "1", "--out", str(tmp_path / "a")])
        == 0
    )
    data = json.loads((tmp_path / "a" / "grid.json").read_text())
    assert data["pretrain"]["steps"] >= 1 and len(data["values"]) == 2
    model = StackedRNN("lstm", input_size=3, hidden_size=5, num_layers=2, output_size=2)
    lsc.save(model, tmp_path / "m.pt")
    assert (
        _cli(
            [
                "analyze",
                "lyapunov",
                "--checkpoint",
                str(tmp_path / "m.pt"),
                "--k",
                "3",
                "--time",
                "30",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "b" / "lyapunov.json").read_text())
    assert len(data["exponents"]) == 3 and data["checkpoint"].endswith("m.pt")
    with pytest.raises(ValueError, match="recurrent"):
        _cli(["analyze", "attractors", "--cell", "ffn", "--out", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="not a file"):
        _cli(["analyze", "grid", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "d")])
