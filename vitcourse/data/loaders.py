"""The loaders the chapters and assignments call: real data when it is there (fetching it
if allowed), the labelled offline stand-in where the caller allows it, an error with
placement instructions otherwise."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from vitcourse.data import formats
from vitcourse.data.download import fetch
from vitcourse.data.errors import DataFileError, DataUnavailableError, DownloadError
from vitcourse.data.sources import (
    CONTENT_MD5, OFFLINE_ENV, Source, expected_md5, get_source, is_system_dir,
    offline_requested, placement_instructions, search_dirs, source_dir,
)
from vitcourse.data.synthetic import CIFAR_KINDS, synthetic_split
from vitcourse.profile import get_profile

# Stand-in sizes (train, test).  The quick profile uses a subset so chapters train in
# seconds on a CPU; it is the first images of the full-size stand-in.
STANDIN_SIZES = {
    "synthetic-fashion": {"quick": (12_000, 2_000), "full": (60_000, 10_000)},
    "synthetic-cifar": {"quick": (10_000, 2_000), "full": (50_000, 10_000)},
    "synthetic-cifar-clutter": {"quick": (10_000, 2_000), "full": (50_000, 10_000)},
}
STANDIN_OF = {"fashion-mnist": "synthetic-fashion", "cifar10": "synthetic-cifar"}  # the default stand-in
REAL_OF = {"synthetic-fashion": "fashion-mnist", **{kind: "cifar10" for kind in CIFAR_KINDS}}


class SyntheticDataWarning(UserWarning):
    """Emitted when a loader returns the offline stand-in instead of the real data set."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of images with integer labels.

    Attributes:
        x_train: uint8 (N_train, H, W) grey or (N_train, H, W, 3) colour images, 0..255.
        y_train: int64 (N_train,) class indices 0..9.
        x_test: uint8 (N_test, ...) like ``x_train``.
        y_test: int64 (N_test,).
        class_names: the 10 class names; ``class_names[y]`` names label ``y``.
        name: ``"fashion-mnist"``, ``"cifar10"``, ``"synthetic-fashion"``, ``"synthetic-cifar"`` or
            ``"synthetic-cifar-clutter"``;
            print it next to every result (see ``vitcourse.profile.run_label``).
        synthetic: True for the offline stand-ins.
        note: one line on where the data came from, e.g. that a stand-in is not the real set.

    ``x_train, y_train, x_test, y_test = ds.arrays()`` unpacks the four arrays.  Every call
    of a loader returns fresh, writable arrays.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    name: str
    synthetic: bool
    note: str

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x_train, y_train, x_test, y_test)."""
        return self.x_train, self.y_train, self.x_test, self.y_test

    def take(self, n_train: int, n_test: int) -> "Dataset":
        """The first ``n_train`` training and ``n_test`` test examples (a quick subset)."""
        for label, n, available in (("n_train", n_train, len(self.y_train)), ("n_test", n_test, len(self.y_test))):
            if not isinstance(n, int) or not 0 < n <= available:
                raise ValueError(f"{label} must be an int in 1..{available} for {self.name}, got {n!r}.")
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                       x_test=self.x_test[:n_test], y_test=self.y_test[:n_test],
                       note=f"{self.note} (first {n_train} train / {n_test} test examples)")

    def summary(self) -> str:
        """What a chapter prints about its data: the name and sizes, and for a stand-in the note
        that it is one (never a folder of the machine that ran it)."""
        line = (f"{self.name}: {len(self.y_train):,} training and {len(self.y_test):,} test images, "
                f"each {self.x_train.shape[1:]} {self.x_train.dtype}")
        return f"{line}\n{self.note}" if self.synthetic else line

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, x_train={self.x_train.dtype}{self.x_train.shape}, "
                f"x_test={self.x_test.dtype}{self.x_test.shape}, synthetic={self.synthetic})")


def load_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True,
                       allow_synthetic: bool | None = None) -> Dataset:
    """Fashion-MNIST: x (N, 28, 28) uint8, y (N,) int64; 60,000 train and 10,000 test.

    Args:
        root: data folder (default ``$VITCOURSE_DATA``, then the user cache, see ``data_root``);
            the system datasets folder that Debian's ``dataset-fashion-mnist`` fills is looked
            in after it (``search_dirs``).  Each file must be the official one: its ``.gz`` MD5
            or the MD5 of its decompressed content is checked.
        download: fetch missing files from the official mirrors (into the data folder).
        allow_synthetic: whether the offline stand-in ``synthetic-fashion`` may be returned
            when the real files are absent and cannot be fetched.  ``None``: only in the
            quick profile.  The quick stand-in has 12,000 train / 2,000 test images.

    Raises:
        DataUnavailableError: no real files, no download, stand-in not allowed; the message
            says which files to put where.
        DataFileError: a file is there but bad (names the file and the fix); the stand-in is
            never used to paper over a corrupt file.
    """
    return _load(get_source("fashion-mnist"), _read_fashion_mnist, root, download, allow_synthetic)


def load_cifar10(root: str | os.PathLike | None = None, download: bool = True,
                 allow_synthetic: bool | None = None, standin: str = "synthetic-cifar") -> Dataset:
    """CIFAR-10: x (N, 32, 32, 3) uint8 channels-last, y (N,) int64; 50,000 train and 10,000 test.

    Arguments and errors as :func:`load_fashion_mnist`; the stand-in is ``standin``:
    ``"synthetic-cifar"`` (objects on plain coloured backgrounds) or ``"synthetic-cifar-clutter"``
    (objects on a class-free multicoloured clutter), 10,000 train / 2,000 test images in the
    quick profile.
    """
    if standin not in CIFAR_KINDS:
        raise ValueError(f"standin must be {' or '.join(map(repr, CIFAR_KINDS))}, got {standin!r}.")
    return _load(get_source("cifar10"), _read_cifar10, root, download, allow_synthetic, standin)


def _load(source: Source, read_real: Callable[..., Dataset], root, download: bool,
          allow_synthetic: bool | None, standin: str | None = None) -> Dataset:
    """Real data if its files are there (or can be fetched), else the stand-in if allowed."""
    allowed, why = _standin_allowed(allow_synthetic)
    folder, missing_reason = _ensure_files(source, root, download)
    if folder is not None:
        return read_real(source, folder, root)
    if not allowed:
        looked = ", ".join(str(d) for d in search_dirs(source, root))
        raise DataUnavailableError(
            f"{source.title} was not found (looked in {looked}) and was not downloaded "
            f"({missing_reason}); the offline stand-in is not allowed here ({why}).\n\n"
            f"{placement_instructions(source, root)}"
        )
    standin = load_standin(standin or STANDIN_OF[source.key])
    warnings.warn(f"{source.title} is not available ({missing_reason}); using the offline "
                  f"stand-in {standin.name!r} ({why}): results on it say nothing about "
                  f"{source.title}.", SyntheticDataWarning, stacklevel=3)
    return standin


def locate(source: Source, root: str | os.PathLike | None = None) -> Path | None:
    """The first folder of :func:`~vitcourse.data.sources.search_dirs` that holds every file of
    ``source``, or None.  Nothing is verified here: the readers do that."""
    for folder in search_dirs(source, root):
        if all((folder / name).is_file() for name in source.files):
            return folder
    return None


def _ensure_files(source: Source, root, download: bool) -> tuple[Path | None, str | None]:
    """(folder holding every file of ``source``, None), fetching them if allowed, or (None, why not)."""
    folder = locate(source, root)
    if folder is not None:
        return folder, None
    target = source_dir(source, root)
    missing = [name for name in source.files if not (target / name).exists()]
    what = f"missing {', '.join(missing)}"
    if not download:
        return None, f"{what}; download=False"
    if offline_requested():
        return None, f"{what}; ${OFFLINE_ENV} is set"
    try:
        fetch(source, root)
    except DownloadError as err:
        return None, f"{what}; download failed: {err.reasons[-1]}"
    return target, None


def _standin_allowed(allow_synthetic: bool | None) -> tuple[bool, str]:
    """Whether the stand-in may be returned, and why (for the messages)."""
    if allow_synthetic is not None:
        if not isinstance(allow_synthetic, bool):
            raise TypeError(f"allow_synthetic must be True, False or None, got {allow_synthetic!r}.")
        return allow_synthetic, f"allow_synthetic={allow_synthetic}"
    profile = get_profile()
    return profile.quick, f"{profile.name} profile"


def load_standin(name: str, size: str | None = None) -> Dataset:
    """The offline stand-in ``"synthetic-fashion"``, ``"synthetic-cifar"`` or
    ``"synthetic-cifar-clutter"`` as a Dataset.

    Args:
        size: ``"quick"`` (subset) or ``"full"`` (real split sizes); default the profile's.
    """
    if name not in STANDIN_SIZES:
        raise ValueError(f"unknown stand-in {name!r}; choose one of {', '.join(STANDIN_SIZES)}.")
    size = size or get_profile().name
    if size not in STANDIN_SIZES[name]:
        raise ValueError(f"size must be 'quick' or 'full', got {size!r}.")
    n_train, n_test = STANDIN_SIZES[name][size]
    x_train, y_train = synthetic_split(name, "train", n_train)
    x_test, y_test = synthetic_split(name, "test", n_test)
    real = get_source(REAL_OF[name])
    return Dataset(x_train.copy(), y_train.copy(), x_test.copy(), y_test.copy(),
                   class_names=real.class_names, name=name, synthetic=True,
                   note=(f"offline stand-in: not the real {real.title} ({n_train:,} train / "
                         f"{n_test:,} test synthetic images); accuracies on it say nothing "
                         f"about {real.title}"))


@dataclass(frozen=True)
class DataStatus:
    """Where a real data set is on this machine.

    folder: the first folder holding all its files (None: not found); verified: whether they
    are the official files (None when not found); problem: why not, when they are not;
    searched: every folder looked in, in order.
    """

    source: Source
    folder: Path | None
    verified: bool | None
    problem: str | None
    searched: tuple[Path, ...]


def data_status(source: Source, root: str | os.PathLike | None = None) -> DataStatus:
    """Find ``source`` as the loaders would and verify its files (nothing is downloaded)."""
    folder = locate(source, root)
    searched = tuple(search_dirs(source, root))
    if folder is None:
        return DataStatus(source, None, None, None, searched)
    try:
        read_real(source, folder, root)
    except DataFileError as err:
        return DataStatus(source, folder, False, str(err), searched)
    return DataStatus(source, folder, True, None, searched)


def read_real(source: Source, folder: Path, root=None) -> Dataset:
    """Read and verify the real ``source`` from ``folder`` (DataFileError when a file is bad)."""
    reader = {"fashion-mnist": _read_fashion_mnist, "cifar10": _read_cifar10}[source.key]
    return reader(source, folder, root)


def _refetch_hint(source: Source, folder: Path, root) -> str:
    """How to replace a bad file found in ``folder``."""
    if is_system_dir(folder):
        return (f"reinstall the package: `sudo apt-get install --reinstall {source.system_package}` "
                f"(or put the official files into {source_dir(source, root)}/, which is looked in first)")
    return (f"delete it and run `{source.fetch_command(Path(root) if root is not None else None)}` "
            f"(or copy the official file there by hand)")


def _read_fashion_mnist(source: Source, folder: Path, root) -> Dataset:
    fix = _refetch_hint(source, folder, root)
    arrays = []
    # files: train images, train labels, test images, test labels
    for (image_name, label_name), count in ((source.files[0:2], source.train_size),
                                            (source.files[2:4], source.test_size)):
        image_path, label_path = folder / image_name, folder / label_name
        images, labels = (formats.read_official_idx(path, magic, expected_md5(path.name),
                                                    CONTENT_MD5.get(path.name), fix)
                          for path, magic in ((image_path, formats.IDX_IMAGES_MAGIC),
                                              (label_path, formats.IDX_LABELS_MAGIC)))
        labels = labels.astype(np.int64)
        formats.check_images(image_path, images, count, source.image_shape, fix)
        formats.check_labels(label_path, labels, count, fix)
        arrays += [images, labels]
    return Dataset(*arrays, class_names=source.class_names, name=source.key, synthetic=False,
                   note=f"the real {source.title}, checksum-verified, from {folder}")


def _read_cifar10(source: Source, folder: Path, root) -> Dataset:
    path = folder / source.files[0]
    fix = _refetch_hint(source, folder, root)
    x_train, y_train, x_test, y_test = formats.read_cifar_tarball(path, expected_md5(path.name), fix)
    formats.check_images(path, x_train, source.train_size, source.image_shape, fix)
    formats.check_labels(path, y_train, source.train_size, fix)
    formats.check_images(path, x_test, source.test_size, source.image_shape, fix)
    formats.check_labels(path, y_test, source.test_size, fix)
    return Dataset(x_train, y_train, x_test, y_test, class_names=source.class_names,
                   name=source.key, synthetic=False,
                   note=f"the real {source.title}, checksum-verified, from {folder}")
