"""Issue 25: the failures a new user met, each now one line that names the file or option
and says what to do (the CLI prints it after ``lsc COMMAND: error:``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

import lsc
from lsc.cli import _memory_message, main
from lsc.files import DamagedFileError, WriteError, read_state, write_atomic, write_state
from lsc.rundir import LOCK, hold_directory


def test_a_directory_where_a_file_should_be_is_named(tmp_path):
    (tmp_path / "result.json").mkdir()
    with pytest.raises(WriteError, match=r"result\.json: a directory is in its place; move it away"):
        write_atomic(tmp_path / "result.json", "{}")


@pytest.mark.integration
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    """``ulimit -f``: a file-size limit hit mid-write (EFBIG), as a full disk would be."""
    target = tmp_path / "big.json"
    target.write_text("old")
    code = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
from lsc.files import write_atomic
try:
    write_atomic({str(target)!r}, "x" * 100_000)
except OSError as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("WriteError could not write") and "big.json" in out
    assert "disk is full or a file-size limit was hit" in out and "the previous file there is intact" in out
    assert target.read_text() == "old" and not list(tmp_path.glob(".big.json.*"))


def test_a_symlinked_lock_is_refused_in_one_line(tmp_path):
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / LOCK).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"\.lsc\.lock is a symbolic link.*remove it"), hold_directory(tmp_path):
        pass


def test_analyze_out_a_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("mine")
    rc = main(["analyze", "grid", "--cell", "gru", "--layers", "2", "--width", "4", "--time", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "taken" in err and "choose another --out directory" in err
    assert out.read_text() == "mine"  # the user's file is untouched


def test_an_allocation_failure_says_the_size_and_what_to_do():
    exc = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 14400000000 bytes. Error code 12 (Cannot allocate memory)"
    )
    message = _memory_message(exc)
    assert message is not None and "13.4 GiB" in message and "smaller --width" in message
    assert _memory_message(RuntimeError("shapes do not match")) is None  # other errors are not dressed up


def test_load_of_a_directory_says_which_file_to_pass(tmp_path):
    lsc.save(lsc.models.StackedRNN("gru", input_size=3, hidden_size=4, num_layers=1), tmp_path / "best.pt")
    with pytest.raises(ValueError, match=r"is a directory; pass the model file in it \(best.pt\)"):
        lsc.load(tmp_path)


def test_a_torchscript_model_is_refused_with_advice_that_works():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0]

    net = Net()
    x = torch.randn(2, 6, 3)
    with pytest.raises(TypeError, match=r"TorchScript.*measure and pre-train the nn\.Module you scripted"):
        lsc.measure(torch.jit.trace(net, x), x)
    report = lsc.measure(net, x)  # the advice, followed, works
    assert report.edges


# ---------------------------------------------------------------- resuming and --force (issue 25)

TRAIN = ["train", "--task", "copy", "-o", "train_size=32", "-o", "val_size=8", "-o", "test_size=8", "-o", "delay=2"]
TRAIN += ["--cell", "gru", "--layers", "1", "--width", "8", "--epochs", "1", "--batch-size", "16", "--quiet"]
PRETRAIN = ["pretrain", "--cell", "gru", "--layers", "1", "--width", "4", "--input-size", "2", "--time", "4"]
PRETRAIN += ["--batch", "2", "--max-steps", "2", "--json"]


def tiny_run(out, **settings):
    task = lsc.tasks.get("copy", symbols=4, length=3, delay=2, train_size=32, val_size=8, test_size=8)
    torch.manual_seed(0)
    return lsc.train(task.model("gru", layers=1, width=8), task, batch_size=16, out=out, **settings)


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_damaged_pretrain_json_and_init_json_are_named_and_the_run_goes_on(tmp_path, capsys):
    argv = [*TRAIN, "--pretrain", "0.5", "--pretrain-steps", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    (tmp_path / "pretrain.json").write_text("")
    (tmp_path / "init.json").write_text('{"edges": [')
    capsys.readouterr()
    assert main([*argv, "--epochs", "2"]) == 0  # --quiet: the warnings still show
    err = capsys.readouterr().err
    assert "lsc train: warning: " + str(tmp_path / "pretrain.json") + " is damaged" in err
    assert str(tmp_path / "init.json") + " is damaged" in err and "the training is unaffected" in err
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_damaged_init_json_without_pretraining_is_measured_afresh(tmp_path, capsys):
    argv = [*TRAIN, "--out", str(tmp_path)]
    assert main(argv) == 0
    first = json.loads((tmp_path / "init.json").read_text())
    (tmp_path / "init.json").write_text("")
    capsys.readouterr()
    assert main([*argv, "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert str(tmp_path / "init.json") + " is damaged" in err and "measured afresh and written again" in err
    assert json.loads((tmp_path / "init.json").read_text()) == first  # the model held its init again


def test_resuming_with_another_amp_is_refused_but_a_larger_budget_is_not(tmp_path):
    tiny_run(tmp_path, epochs=1)
    config = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match=r"different train\.amp None -> 'bf16'"):
        tiny_run(tmp_path, epochs=2, amp="bf16")
    assert (tmp_path / "config.json").read_text() == config  # not switched to bf16 mid-run
    assert tiny_run(tmp_path, epochs=2, patience=5).epochs == 2  # the budgets may change


def test_another_runs_checkpoint_copied_in_is_refused(tmp_path):
    tiny_run(tmp_path / "a", epochs=1, seed=0)
    tiny_run(tmp_path / "b", epochs=1, seed=1)
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt is another run's checkpoint.*train\.seed 0 -> 1.*move it"):
        tiny_run(tmp_path / "b", epochs=2, seed=1)
    # a checkpoint written before checkpoints carried their run's identity resumes on config.json alone
    path = tmp_path / "a" / "checkpoint.pt"
    old = read_state(path, "train-checkpoint")
    del old["identity"]
    write_state(path, "train-checkpoint", old)
    assert tiny_run(tmp_path / "a", epochs=2, seed=0).epochs == 2


def test_another_pretraining_checkpoint_copied_in_is_refused(tmp_path):
    def run(seed, out):
        torch.manual_seed(0)
        model = lsc.models.StackedRNN("gru", input_size=3, hidden_size=4, num_layers=1)
        return lsc.pretrain(model, None, max_steps=2, seed=seed, checkpoint=out, progress=False)

    run(0, tmp_path / "a")
    run(1, tmp_path / "b")
    shutil.copy(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"other settings \(seed 0 -> 1\)"):
        run(1, tmp_path / "b")


def test_lsc_train_names_a_changed_setting_on_every_route(tmp_path, capsys):
    argv = [*TRAIN, "--lr", "0.01"]
    assert main([*argv, "--out", str(tmp_path / "train")]) == 0
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "train"), "--lr", "0.001"]) == 2  # the training's resume
    assert "train.lr 0.01 -> 0.001" in one_error(capsys)
    argv = [*argv, "--pretrain", "0.5", "--pretrain-steps", "2", "--out", str(tmp_path / "pre")]
    assert main(argv) == 0
    for name in ("checkpoint.pt", "config.json"):  # as if stopped during the pre-training
        (tmp_path / "pre" / name).unlink()
    capsys.readouterr()
    assert main([*argv, "--lr", "0.001"]) == 2  # the pre-training's resume
    assert "train.lr 0.01 -> 0.001" in one_error(capsys)


def test_the_library_is_not_told_to_run_again_with_force(tmp_path):
    """lsc.train and lsc.pretrain have no force keyword: their messages say what does."""
    tiny_run(tmp_path / "t", epochs=1, lr=0.01)
    with pytest.raises(ValueError) as refused:
        tiny_run(tmp_path / "t", epochs=1, lr=0.001)
    model = lsc.models.StackedRNN("gru", input_size=3, hidden_size=4, num_layers=1)
    lsc.pretrain(model, None, max_steps=2, lr=0.01, checkpoint=tmp_path / "p", progress=False)
    with pytest.raises(ValueError) as refused_too:
        lsc.pretrain(model, None, max_steps=2, lr=0.02, checkpoint=tmp_path / "p", progress=False)
    damaged = DamagedFileError(tmp_path / "x.pt", "the file is empty")
    for message in (str(refused.value), str(refused_too.value), str(damaged)):
        assert "run again with --force" not in message and "(--force)" not in message
        assert "delete it" in message and "lsc train and lsc pretrain start afresh with --force" in message


def test_lsc_pretrain_refuses_a_train_run_directory_even_with_force(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([*PRETRAIN, "--out", str(tmp_path), "--force"]) == 2
    err = one_error(capsys)
    assert "holds a run of lsc train" in err and "use another --out directory" in err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing deleted or mixed in


def test_lsc_train_refuses_a_pretrain_run_directory_even_with_force(tmp_path, capsys):
    assert main([*PRETRAIN, "--out", str(tmp_path)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(tmp_path), "--force"]) == 2
    err = one_error(capsys)
    assert "holds a run of lsc pretrain" in err and "pretrained.pt" in err and "use another --out directory" in err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
