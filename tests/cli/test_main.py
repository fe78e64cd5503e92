"""The `lsc` command line: same numbers as the Python API, helpful help, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import lsc
from lsc.cli import main
from lsc.models import StackedRNN

ARGS = [
    "measure",
    "--cell",
    "gru",
    "--layers",
    "2",
    "--width",
    "24",
    "--input-size",
    "5",
    "--time",
    "12",
    "--batch",
    "4",
]


def test_json_output_is_exactly_the_report_dict(capsys):
    assert main([*ARGS, "--json", "--seed", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    torch.manual_seed(3)
    model = StackedRNN("gru", input_size=5, hidden_size=24, num_layers=2, output_size=10)
    x = torch.randn(4, 12, 5)
    expected = json.loads(json.dumps(lsc.measure(model, x, seed=3).to_dict()))
    assert printed.pop("seconds") > 0 and expected.pop("seconds") > 0  # wall time: the only field that differs
    assert printed == expected


def test_table_output_and_check_exit_status(capsys):
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "spectral radius" in out and "depth" in out and "LSC" in out
    assert main([*ARGS, "--check", "--target", "5", "--tol", "0.01"]) == 1
    assert main([*ARGS, "--check", "--target", "0.5", "--tol", "100"]) == 0


def test_options_reach_the_measurement(capsys):
    assert (
        main(
            [
                *ARGS,
                "--json",
                "--kinds",
                "time",
                "--quantity",
                "norm",
                "--method",
                "power",
                "--time-points",
                "0,11",
                "--target",
                "time=0.7",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert {e["kind"] for e in d["edges"]} == {"time"}
    assert d["quantity"] == "norm" and d["method"] == "power" and d["time_points"] == [0, 11]
    assert d["target"] == {"time": 0.7}


@pytest.mark.integration
def test_help_explains_every_option():
    proc = subprocess.run([sys.executable, "-m", "lsc", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "measure" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "lsc", "measure", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in (
        "--cell",
        "--layers",
        "--width",
        "--input-size",
        "--time",
        "--batch",
        "--json",
        "--method",
        "--seed",
        "--target",
        "--tol",
        "--kinds",
        "--quantity",
        "--steps",
        "--time-points",
    ):
        assert option in proc.stdout


@pytest.mark.integration
def test_a_closed_pipe_is_not_an_error():
    """`lsc experiment list | head -1`: the reader leaves early; no traceback, status 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lsc", "experiment", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None and proc.stdout.readline()  # read one line, then hang up
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--cell", "lstn"], "Did you mean 'lstm'"),
        (["--target", "0"], "> 0"),
        (["--target", "-1"], "> 0"),
        (["--kinds", "tme"], "Did you mean 'time'"),
        (["--layers", "0"], "num_layers must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, extra, message):
    assert main(ARGS + extra) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["measure", "--time", "-2"], "--time: expected an integer >= 1, got -2"),
        (["measure", "--batch", "-1"], "--batch: expected an integer >= 1, got -1"),
        (["pretrain", "--max-seconds", "-1"], "--max-seconds: expected a finite number > 0"),
        (["train", "--task", "copy", "--device", "foo"], "unknown device 'foo'"),
    ],
)
def test_a_users_mistake_is_one_line_not_a_traceback(capsys, argv, message):
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own refusal: status 2 and a usage line
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_analyze_refuses_model_options_beside_a_checkpoint(tmp_path, capsys):
    lsc.save(StackedRNN("lstm", input_size=3, hidden_size=4, num_layers=2), tmp_path / "m.pt")
    assert (
        main(["analyze", "grid", "--cell", "gru", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "a")])
        == 2
    )
    assert "--cell would be ignored" in capsys.readouterr().err


USER_MODELS = """
import torch
from torch import nn

class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(30, 16)
        self.rnn = nn.GRU(16, 32, num_layers=2, batch_first=True)
        self.head = nn.Linear(32, 30)

    def forward(self, tokens):
        return self.head(self.rnn(self.embed(tokens))[0])

def make_lm():
    return LM()
"""


def test_measure_and_pretrain_a_users_model_from_the_command_line(tmp_path, monkeypatch, capsys):
    """--model MODULE:FACTORY, --checkpoint (the user's state_dict), --inputs (a tensor file):
    the model is found and measured; pretrain writes a state_dict that --checkpoint reads."""
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import usermodels

    torch.manual_seed(1)
    start = usermodels.make_lm().state_dict()
    torch.save(start, tmp_path / "lm.pt")
    torch.save(torch.randint(0, 30, (64, 20), generator=torch.Generator().manual_seed(0)), tmp_path / "tokens.pt")
    common = ["--model", "usermodels:make_lm", "--inputs", str(tmp_path / "tokens.pt"), "--target", "0.5"]
    assert main(["measure", *common, "--checkpoint", str(tmp_path / "lm.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(e["module"], e["kind"]) for e in report["edges"]][:2] == [("rnn", "encoder"), ("rnn", "time")]
    model = usermodels.make_lm()
    model.load_state_dict(start)
    direct = lsc.measure(model, torch.load(tmp_path / "tokens.pt"), target=0.5)
    assert [e["mean"] for e in report["edges"]] == pytest.approx([e.mean for e in direct.edges])
    out = tmp_path / "out"
    assert (
        main(
            [
                "pretrain",
                *common,
                "--checkpoint",
                str(tmp_path / "lm.pt"),
                "--kinds",
                "time,depth",
                "--tol",
                "0.05",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "pre-trained rnn (GRU) of the LM" in capsys.readouterr().out
    trained = torch.load(out / "pretrained.pt", weights_only=True)
    model.load_state_dict(trained)  # the user's own state_dict keys
    assert not torch.equal(trained["rnn.weight_hh_l0"], start["rnn.weight_hh_l0"])
    assert torch.equal(trained["embed.weight"], start["embed.weight"])
    assert (
        main(
            [
                "measure",
                *common,
                "--checkpoint",
                str(out / "pretrained.pt"),
                "--kinds",
                "time,depth",
                "--tol",
                "0.05",
                "--check",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "usermodels:make_lm"], "--model needs --inputs FILE"),
        (["--model", "usermodels", "--inputs", "X"], "MODULE:FACTORY"),
        (["--model", "nosuchpkg:f", "--inputs", "X"], "cannot import nosuchpkg"),
        (["--model", "usermodels:nothere", "--inputs", "X"], "usermodels has no nothere"),
        (["--model", "usermodels:make_lm", "--inputs", "MISSING"], "does not exist"),
        (["--model", "usermodels:make_lm", "--inputs", "X", "--checkpoint", "BAD"], "does not fit the --model"),
        (["--inputs", "X"], "go with --model"),
    ],
)
def test_a_users_model_given_wrongly_gets_one_line(tmp_path, monkeypatch, capsys, argv, message):
    (tmp_path / "usermodels.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.save(torch.randint(0, 30, (8, 5)), tmp_path / "X")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "BAD")
    argv = [str(tmp_path / a) if a in ("X", "BAD", "MISSING") else a for a in argv]
    assert main(["measure", *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
