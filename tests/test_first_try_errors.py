"""Issue 25: the failures a new user met, each now one line that names the file or option
and says what to do (the CLI prints it after ``lsc COMMAND: error:``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import lsc
from lsc.cli import _memory_message, main
from lsc.files import WriteError, write_atomic
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
