"""lsc.rundir: one run per directory, refused up front when unwritable, --force clears
only lsc's files (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lsc
from lsc.cli import main
from lsc.rundir import DirectoryBusyError, hold_directory, remove_run_files

SRC = str(Path(lsc.__file__).resolve().parents[1])


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from lsc.rundir import hold_directory
    with hold_directory({folder!r}):
        print("held", flush=True)
        time.sleep(60)
""")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(src=SRC, folder=str(folder))], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.integration
def test_a_second_process_is_refused_with_the_first_ones_pid(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(DirectoryBusyError, match=f"pid {proc.pid}"), hold_directory(folder):
            pass
        # lsc train and lsc pretrain on the same --out are refused the same way, before any work
        for argv in (
            ["train", "--task", "copy", "--cell", "gru", "--layers", "1", "--width", "8", "--epochs", "1"],
            ["pretrain", "--cell", "gru", "--layers", "1", "--width", "4", "--input-size", "2", "--time", "4"],
        ):
            run = subprocess.run(
                [sys.executable, "-m", "lsc", *argv, "--out", str(folder), "--quiet"],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "PYTHONPATH": SRC},
            )
            assert run.returncode == 2 and f"pid {proc.pid}" in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert sorted(p.name for p in folder.iterdir()) == [".lsc.lock", ".lsc.owner"]  # nothing was written
    finally:
        proc.kill()
        proc.wait()
    # free again once the holder is gone (the OS drops its lock), and re-entrant within one process
    with hold_directory(folder), hold_directory(folder):
        pass


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    start = time.perf_counter()
    assert (
        main(
            [
                "pretrain",
                "--cell",
                "gru",
                "--layers",
                "2",
                "--width",
                "8",
                "--max-steps",
                "1000",
                "--tol",
                "0",
                "--out",
                str(blocker / "run"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "cannot write to" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--task",
                "copy",
                "--cell",
                "gru",
                "--layers",
                "1",
                "--width",
                "8",
                "--epochs",
                "50",
                "--out",
                str(blocker / "run"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "cannot write to" in capsys.readouterr().err
    assert time.perf_counter() - start < 30  # refused up front, not after 1000 steps / 50 epochs


def test_force_removes_only_lsc_run_files(tmp_path):
    (tmp_path / "checkpoint.pt").write_text("x")
    (tmp_path / "pretrain").mkdir()
    (tmp_path / "pretrain" / "checkpoint.pt").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    removed = remove_run_files(tmp_path, ["checkpoint.pt", "pretrain", "result.json"])
    assert [p.name for p in removed] == ["checkpoint.pt", "pretrain"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_force_starts_afresh_over_a_damaged_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "pretrain",
        "--cell",
        "gru",
        "--layers",
        "1",
        "--width",
        "4",
        "--input-size",
        "2",
        "--time",
        "4",
        "--batch",
        "2",
        "--max-steps",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00" * 100)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt is damaged" in err and "--force" in err
    assert main([*argv, "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["steps"] == 2
