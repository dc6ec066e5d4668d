"""Data for the course: real Fashion-MNIST and CIFAR-10, checksum-verified and cached, and
an honest offline stand-in.

    from vitcourse.data import load_fashion_mnist
    ds = load_fashion_mnist()                  # real data, fetched on first use
    x_train, y_train, x_test, y_test = ds.arrays()
    print(ds.name)                             # 'fashion-mnist' -- show it next to every result

Where the real files cannot be fetched (offline CI, the book build) the loaders return the
deterministic stand-in ``synthetic-fashion`` / ``synthetic-cifar`` -- but only where the
caller allows it (``allow_synthetic=True``, or the quick profile when it is ``None``).
Otherwise they raise :class:`DataUnavailableError` with instructions for placing the files
by hand.  Data lives in ``data_root()`` (``$VITCOURSE_DATA``, default
``~/.cache/vitcourse``); ``python -m vitcourse.data fetch fashion-mnist cifar10`` fetches it.
"""

from vitcourse.data.download import download, fetch, file_md5
from vitcourse.data.errors import DataError, DataFileError, DataUnavailableError, DownloadError
from vitcourse.data.loaders import (
    Dataset, SyntheticDataWarning, load_cifar10, load_fashion_mnist, load_standin,
)
from vitcourse.data.sources import (
    CIFAR10, FASHION_MNIST, PUBLISHED_MD5, SOURCES, Source, data_root, get_source,
    placement_instructions,
)
from vitcourse.data.tables import load_fashion_mnist_csv

__all__ = [
    "CIFAR10", "FASHION_MNIST", "PUBLISHED_MD5", "SOURCES", "DataError", "DataFileError",
    "DataUnavailableError", "Dataset", "DownloadError", "Source", "SyntheticDataWarning",
    "data_root", "download", "fetch", "file_md5", "get_source", "load_cifar10",
    "load_fashion_mnist", "load_fashion_mnist_csv", "load_standin", "placement_instructions",
]
