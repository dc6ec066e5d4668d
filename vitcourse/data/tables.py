"""Fashion-MNIST as pandas tables, in the CSV layout the first ViT lesson starts from.

One row per image: a ``label`` column, then ``pixel1`` … ``pixel784`` (row-major, 0..255),
then a string ``split`` column naming the training fold the row belongs to (``fold1`` …
``fold5``, five interleaved cross-validation folds; ``test`` in the test table).  The
``split`` column is the trap the lesson shows: drop only ``label`` and it rides along with
the pixels, so every row has 785 values instead of 784.

:func:`data_status_table` is the setup check's table of the real data sets: where each was
found, whether its files are the official ones, and which chapters and assignments use it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vitcourse.data.loaders import Dataset, data_status, load_fashion_mnist
from vitcourse.data.sources import SOURCES, get_source, source_dir

N_FOLDS = 5
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(1, 28 * 28 + 1))
COLUMNS = ("label", *PIXEL_COLUMNS, "split")
CSV_DTYPES = {"label": "int64", **dict.fromkeys(PIXEL_COLUMNS, "uint8"), "split": "str"}


def split_names(n_rows: int, split: str) -> np.ndarray:
    """(n_rows,) fold names: ``fold1`` … ``fold5`` in turn for ``"train"``, ``test`` for ``"test"``."""
    if split == "test":
        return np.full(n_rows, "test", dtype=object)
    folds = np.array([f"fold{k}" for k in range(1, N_FOLDS + 1)], dtype=object)
    return folds[np.arange(n_rows) % N_FOLDS]


def to_frame(images: np.ndarray, labels: np.ndarray, split: str, dataset: str) -> pd.DataFrame:
    """(N, 28, 28) uint8 images and (N,) labels → a DataFrame with columns :data:`COLUMNS`.

    ``frame.attrs["dataset"]`` names the data set the rows came from.
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
        raise ValueError(f"want (N, 28, 28) images and N labels, got {images.shape} and {len(labels)}.")
    frame = pd.DataFrame(images.reshape(len(images), -1), columns=list(PIXEL_COLUMNS))
    frame.insert(0, "label", np.asarray(labels, dtype=np.int64))
    frame["split"] = pd.Series(split_names(len(images), split), dtype="str")
    frame.attrs["dataset"] = dataset
    return frame


def csv_paths(root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where the cached train and test CSV files of the real Fashion-MNIST are kept."""
    folder = source_dir(get_source("fashion-mnist"), root)
    return folder / "fashion-mnist_train.csv", folder / "fashion-mnist_test.csv"


def load_fashion_mnist_csv(root: str | os.PathLike | None = None, download: bool = True,
                           allow_synthetic: bool | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fashion-MNIST as (train_df, test_df) in the CSV layout (see the module docstring).

    The real data set's tables are written once from the IDX files, as
    ``fashion-mnist_train.csv`` / ``fashion-mnist_test.csv`` next to them, and read from
    there afterwards; a cached CSV that does not parse to the expected table is deleted and
    rebuilt.  On the offline stand-in the tables are built in memory (nothing is written).
    Arguments and errors as :func:`load_fashion_mnist`.

    Returns:
        train_df (N_train, 786) and test_df (N_test, 786): ``label`` int64, ``pixel1`` …
        ``pixel784`` uint8, ``split`` str.  ``df.attrs["dataset"]`` names the data set
        (``"fashion-mnist"`` or ``"synthetic-fashion"``) and ``df.attrs["note"]`` says
        where it came from.
    """
    data = load_fashion_mnist(root, download, allow_synthetic)
    if data.synthetic:
        frames = _frames(data)
    else:
        frames = tuple(_cached_csv(path, data, split)
                       for path, split in zip(csv_paths(root), ("train", "test")))
    for frame in frames:
        frame.attrs.update(dataset=data.name, note=data.note)
    return frames


def _frames(data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (to_frame(data.x_train, data.y_train, "train", data.name),
            to_frame(data.x_test, data.y_test, "test", data.name))


def _cached_csv(path: Path, data: Dataset, split: str) -> pd.DataFrame:
    """Read ``path`` if it holds the expected table; otherwise (re)write it from ``data``."""
    images, labels = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    if path.exists():
        frame, problem = _read_csv(path, len(labels))
        if problem is None:
            return frame
        warnings.warn(f"{path}: {problem}; deleting it and writing it again from the IDX files.",
                      stacklevel=3)
        path.unlink()
    frame = to_frame(images, labels, split, data.name)
    _write_atomically(frame, path)
    return frame


def _read_csv(path: Path, n_rows: int) -> tuple[pd.DataFrame | None, str | None]:
    """(table, None) if ``path`` is a valid cached table of ``n_rows`` rows, else (None, why not)."""
    try:
        frame = pd.read_csv(path, dtype=CSV_DTYPES)
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as err:
        return None, f"does not parse as the Fashion-MNIST CSV ({type(err).__name__}: {err})"
    if tuple(frame.columns) != COLUMNS:
        return None, f"has columns {list(frame.columns)[:3]}…, expected label, pixel1…pixel784, split"
    if len(frame) != n_rows:
        return None, f"has {len(frame)} rows, expected {n_rows}"
    return frame, None


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to a temporary file beside ``path``, then rename it into place, so an
    interrupted write never leaves a partial CSV under the final name."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# Which parts of the course load each data set: (chapters of the book, assignments). Written once
# here for the setup check's table; tests/library/test_data.py checks it against the chapters'
# and the assignments' sources.
USED_BY: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "fashion-mnist": ((4, 5), (2,)),
    "cifar10": ((6, 7, 8, 9), ()),
}
STATUS_COLUMNS = ("data set", "found in", "official files", "used by")
OFFICIAL = {True: "yes", False: "NO", None: "–"}


def used_by(key: str) -> str:
    """Which chapters and assignments use data set ``key``, in words, e.g.
    ``"chapters 4 and 5, assignment 2"``: each group's numbers joined with "and", the groups
    with a comma."""
    if key not in USED_BY:
        raise KeyError(f"no entry for data set {key!r} in vitcourse.data.tables.USED_BY "
                       f"(it has {', '.join(sorted(USED_BY))}): add the chapters that load it")
    groups = []
    for word, numbers in zip(("chapter", "assignment"), USED_BY[key]):
        if numbers:
            names = list(map(str, numbers))
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            groups.append(f"{word}{'s' if len(numbers) > 1 else ''} {listed}")
    return ", ".join(groups) or "none"


def _home_relative(folder: Path | None) -> str:
    """A folder as you would type it, from your home folder (~); "not found" for None."""
    return "not found" if folder is None else str(folder).replace(str(Path.home()), "~")


def data_status_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per real data set (index ``data set``): the folder it was found in, whether its
    files are the official ones (``yes``/``NO``; ``–`` when not found) and which chapters and
    assignments use it. Nothing is downloaded."""
    rows = []
    for source in SOURCES.values():
        status = data_status(source, root)
        rows.append((source.key, _home_relative(status.folder), OFFICIAL[status.verified],
                     used_by(source.key)))
    return pd.DataFrame(rows, columns=list(STATUS_COLUMNS)).set_index("data set")
