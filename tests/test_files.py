"""lsc.files: nothing in a file runs, damage is named, writes are atomic (docs/reliability.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import lsc
from lsc.cli import main
from lsc.files import DamagedFileError, digest, read_state, write_atomic, write_state
from lsc.models import StackedRNN


def _payload() -> dict[str, object]:
    return {"w": torch.arange(6.0).reshape(2, 3), "n": 3, "name": "x", "nested": {1: [0.5, float("inf")], "t": (1, 2)}}


def test_state_files_round_trip_with_their_checksum(tmp_path):
    write_state(tmp_path / "a.pt", "thing", _payload())
    back = read_state(tmp_path / "a.pt", "thing")
    assert torch.equal(back["w"], _payload()["w"]) and back["nested"] == _payload()["nested"]
    assert digest(back) == digest(_payload())
    changed = _payload()
    changed["w"][0, 0] = 1e-30  # any change of a value changes the digest
    assert digest(changed) != digest(_payload())
    with pytest.raises(DamagedFileError, match="not a 'other' file"):
        read_state(tmp_path / "a.pt", "other")


def _tensor_offset(path: Path, tensor: torch.Tensor) -> int:
    data = path.read_bytes()
    at = data.find(tensor.numpy().tobytes()[8:24])
    assert at > 0
    return at


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "foreign-dict", "bit-rot", "not-a-dict"])
def test_damaged_files_are_named_not_a_traceback(tmp_path, damage):
    path = tmp_path / "checkpoint.pt"
    weights = torch.linspace(-1, 1, 64)
    write_state(path, "thing", {"w": weights})
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "random":
        data = bytearray(
            torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
            .numpy()
            .tobytes()
        )
    elif damage == "bit-rot":  # four bytes inside the tensor data overwritten
        at = _tensor_offset(path, weights)
        data[at : at + 4] = b"\x00\x00\xc0\x7f"
    if damage == "foreign-dict":
        torch.save({"model": {"w": weights}}, path)
    elif damage == "not-a-dict":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError) as info:
        read_state(path, "thing")
    message = str(info.value)
    assert str(path) in message and ("delete it" in message or "another" in message) and "\n" not in message


class _Payload:
    """Pickles to a call that leaves a mark: what a crafted .pt would run on torch.load(weights_only=False)."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.mark}",))


def _crafted(path: Path, mark: Path) -> Path:
    torch.save({"format": "lsc-model/1", "class": "StackedRNN", "config": {}, "state_dict": _Payload(mark)}, path)
    return path


def test_a_crafted_pickle_is_never_executed_by_load(tmp_path):
    mark = tmp_path / "pwned"
    with pytest.raises(DamagedFileError, match="nothing was run"):
        lsc.load(_crafted(tmp_path / "evil.pt", mark))
    assert not mark.exists()


def test_a_crafted_checkpoint_in_out_is_never_executed_by_the_cli(tmp_path, capsys):
    mark = tmp_path / "pwned"
    train_out, pre_out = tmp_path / "train", tmp_path / "pre"
    train = [
        "train",
        "--task",
        "copy",
        "-o",
        "train_size=64",
        "-o",
        "val_size=32",
        "-o",
        "test_size=32",
        "--cell",
        "gru",
        "--layers",
        "1",
        "--width",
        "8",
        "--epochs",
        "1",
        "--out",
        str(train_out),
        "--quiet",
    ]
    assert main(train) == 0  # a real run, whose checkpoint is then swapped for a crafted one
    capsys.readouterr()
    pre_out.mkdir()
    for out in (train_out, pre_out):
        _crafted(out / "checkpoint.pt", mark)
    assert main(train) == 2
    assert "checkpoint.pt is damaged" in capsys.readouterr().err
    assert (
        main(
            [
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
                "1",
                "--out",
                str(pre_out),
                "--quiet",
            ]
        )
        == 2
    )
    assert "checkpoint.pt is damaged" in capsys.readouterr().err
    assert (
        main(["analyze", "grid", "--checkpoint", str(train_out / "checkpoint.pt"), "--out", str(tmp_path / "a")]) == 2
    )
    assert "nothing was run" in capsys.readouterr().err
    assert not mark.exists()


def test_the_first_model_format_still_loads_without_running_code(tmp_path):
    model = StackedRNN("gru", input_size=3, hidden_size=4, num_layers=2)
    old = {
        "format": "lsc-model/1",
        "class": "StackedRNN",
        "config": dict(model.config),
        "dtype": "float32",
        "state_dict": model.state_dict(),
        "window": 7,
    }
    torch.save(old, tmp_path / "old.pt")
    back = lsc.load(tmp_path / "old.pt")
    assert back.max_length == 7 and all(torch.equal(a, b) for a, b in zip(back.parameters(), model.parameters()))


def test_bit_rot_in_a_model_file_is_caught_by_its_checksum(tmp_path):
    model = StackedRNN("gru", input_size=3, hidden_size=16, num_layers=1)
    lsc.save(model, tmp_path / "m.pt")
    data = bytearray((tmp_path / "m.pt").read_bytes())
    at = _tensor_offset(tmp_path / "m.pt", model.cells[0].weight_hh.detach().contiguous())
    data[at : at + 4] = b"\x00\x00\x80\x7f"  # +inf into a weight
    (tmp_path / "m.pt").write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match="checksum"):
        lsc.load(tmp_path / "m.pt")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    write_atomic(path, "old")

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
