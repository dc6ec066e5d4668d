"""Where the real data sets live: file names, download mirrors, published MD5s, folders.

Everything the downloader, the readers and the error messages need to know about a data
set is declared once here.  The MD5 table is a plain module-level dict so that tests can
swap in the checksums of their tiny fixture files (``monkeypatch.setitem``); production
code always reads the published values below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DATA_ENV = "VITCOURSE_DATA"
OFFLINE_ENV = "VITCOURSE_OFFLINE"
# Debian's dataset-* packages install into /usr/share/datasets/<name>/ (read only, never written).
# Set this variable to another folder to move it, or to the empty string to ignore it.
SYSTEM_DATA_ENV = "VITCOURSE_SYSTEM_DATA"
DEFAULT_SYSTEM_DATA = "/usr/share/datasets"

# Published MD5s of the official files (Fashion-MNIST README; CIFAR-10 download page).
PUBLISHED_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
}

# MD5s of the *decompressed* official IDX files.  A copy compressed again (Debian's package
# drops the gzip header's file name and changes its time stamp) has another ``.gz`` MD5 but the
# same content: a file passes when either its ``.gz`` MD5 or its content MD5 is the official one.
CONTENT_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}


@dataclass(frozen=True)
class Source:
    """One real data set: what to download, from where, and what it must contain.

    Attributes:
        key: the name used on the command line and in results, e.g. ``"fashion-mnist"``.
        title: the human name, e.g. ``"Fashion-MNIST"``.
        files: file names, downloaded as ``mirror + name`` into ``data_root() / key``.
        mirrors: base URLs tried in order; the first one that answers wins.
        train_size, test_size: number of images each split must hold.
        image_shape: shape of one image, (H, W) or (H, W, C).
        class_names: the 10 class names, in label order.
        system_package: the Debian package that installs the official files into the system
            datasets folder, or None where there is none.
    """

    key: str
    title: str
    files: tuple[str, ...]
    mirrors: tuple[str, ...]
    train_size: int
    test_size: int
    image_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    system_package: str | None = None

    def urls(self, name: str) -> list[str]:
        """Every URL ``name`` can be fetched from, in the order they are tried."""
        return [mirror + name for mirror in self.mirrors]

    def fetch_command(self, root: Path | None = None) -> str:
        """The shell command that downloads this data set into ``root``."""
        command = f"python -m vitcourse.data fetch {self.key}"
        return command if root is None else f"{command} --root {root}"


FASHION_MNIST = Source(
    key="fashion-mnist",
    title="Fashion-MNIST",
    files=(
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    train_size=60_000,
    test_size=10_000,
    image_shape=(28, 28),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_package="dataset-fashion-mnist",
)

CIFAR10 = Source(
    key="cifar10",
    title="CIFAR-10",
    files=("cifar-10-python.tar.gz",),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    train_size=50_000,
    test_size=10_000,
    image_shape=(32, 32, 3),
    class_names=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
)

# Looked up by key everywhere (CLI, loaders); tests may swap in a Source sized for fixtures.
SOURCES: dict[str, Source] = {FASHION_MNIST.key: FASHION_MNIST, CIFAR10.key: CIFAR10}


def get_source(key: str) -> Source:
    """The :class:`Source` registered under ``key``; ValueError naming the choices otherwise."""
    try:
        return SOURCES[key]
    except KeyError:
        raise ValueError(
            f"unknown data set {key!r}; choose one of {', '.join(sorted(SOURCES))}."
        ) from None


def expected_md5(name: str, checksums: Mapping[str, str] | None = None) -> str:
    """The MD5 a file called ``name`` must have (from ``checksums``, default the published table)."""
    table = PUBLISHED_MD5 if checksums is None else checksums
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"no checksum is known for {name!r}; known files: {', '.join(table)}.") from None


def default_data_root() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/vitcourse`` (``~/.cache/vitcourse``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "vitcourse"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding every data set: ``root`` if given, else ``$VITCOURSE_DATA``, else
    :func:`default_data_root`.  Each data set lives in a sub-folder named by its key."""
    if root is None:
        root = os.environ.get(DATA_ENV) or default_data_root()
    return Path(root).expanduser()


def source_dir(source: Source, root: str | os.PathLike | None = None) -> Path:
    """``data_root(root) / source.key``: where ``source``'s files are kept."""
    return data_root(root) / source.key


def system_data_root() -> Path | None:
    """The system datasets folder (``$VITCOURSE_SYSTEM_DATA``, default ``/usr/share/datasets``),
    or None when the variable is set to the empty string."""
    value = os.environ.get(SYSTEM_DATA_ENV)
    if value is None:
        return Path(DEFAULT_SYSTEM_DATA)
    return Path(value).expanduser() if value.strip() else None


def search_dirs(source: Source, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders that may hold ``source``'s files, in the order they are looked in.

    With ``root``: that folder, then the system datasets folder.  Without: ``$VITCOURSE_DATA``
    (when set), the user cache (:func:`default_data_root`), then the system datasets folder,
    which Debian's package fills and which is only ever read.  Each is ``<folder>/<source.key>``.
    """
    if root is not None:
        folders = [data_root(root)]
    else:
        env = os.environ.get(DATA_ENV)
        folders = [Path(env).expanduser()] if env else []
        folders.append(default_data_root())
    system = system_data_root()
    if system is not None:
        folders.append(system)
    return list(dict.fromkeys(folder / source.key for folder in folders))


def is_system_dir(folder: Path) -> bool:
    """True when ``folder`` lies in the (read-only) system datasets folder."""
    system = system_data_root()
    return system is not None and Path(folder).parent == system


def offline_requested() -> bool:
    """True when ``$VITCOURSE_OFFLINE`` is set to a true value: never try the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def placement_instructions(source: Source, root: str | os.PathLike | None = None) -> str:
    """Step-by-step text telling a person how to get ``source`` onto this machine by hand."""
    folder = source_dir(source, root)
    lines = [
        f"To use the real {source.title}, either run (with internet access)",
        f"    {source.fetch_command(Path(root) if root is not None else None)}",
        "or download these files on another machine and copy them, unchanged, into",
        f"    {folder}/",
    ]
    for name in source.files:
        lines.append(f"  - {name}  (MD5 {expected_md5(name)})")
        lines.extend(f"      {url}" for url in source.urls(name))
    if source.system_package:
        lines.append(f"On Debian or Ubuntu, the package {source.system_package} installs the official files "
                     f"(read only, found automatically):")
        lines.append(f"    sudo apt-get install {source.system_package}")
    lines.append(f"The data folder is {data_root(root)} (set ${DATA_ENV} or pass root= to move it).")
    return "\n".join(lines)
