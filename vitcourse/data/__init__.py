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
by hand.  The loaders look in ``$VITCOURSE_DATA``, the user cache ``~/.cache/vitcourse``, then
the system datasets folder ``/usr/share/datasets`` that Debian's ``dataset-fashion-mnist`` fills
(read only); ``python -m vitcourse.data fetch fashion-mnist cifar10`` downloads into the first
of the first two, and ``python -m vitcourse.data status`` says where each data set was found.
"""

from vitcourse.data.download import download, fetch, file_md5
from vitcourse.data.errors import DataError, DataFileError, DataUnavailableError, DownloadError
from vitcourse.data.loaders import (
    Dataset, SyntheticDataWarning, load_cifar10, load_fashion_mnist, load_standin, locate,
)
from vitcourse.data.sources import (
    CIFAR10, CONTENT_MD5, FASHION_MNIST, PUBLISHED_MD5, SOURCES, Source, data_root, get_source,
    placement_instructions, search_dirs,
)
from vitcourse.data.tables import load_fashion_mnist_csv

__all__ = [
    "CIFAR10", "CONTENT_MD5", "FASHION_MNIST", "PUBLISHED_MD5", "SOURCES", "DataError", "DataFileError",
    "DataUnavailableError", "Dataset", "DownloadError", "Source", "SyntheticDataWarning",
    "data_root", "download", "fetch", "file_md5", "get_source", "load_cifar10",
    "load_fashion_mnist", "load_fashion_mnist_csv", "load_standin", "locate", "placement_instructions",
    "search_dirs",
]
