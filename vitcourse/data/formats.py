"""Readers for the two on-disk formats: IDX (gzipped, Fashion-MNIST) and the CIFAR-10
python tarball (pickled batches).  Each check failure names the file and the fix.

IDX layout: a 4-byte magic ``00 00 TT DD`` (TT = 0x08 for unsigned bytes, DD = number of
axes), then DD big-endian uint32 sizes, then the values in C order.  Images are
``0x00000803`` (N, 28, 28); labels are ``0x00000801`` (N,).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from vitcourse.data.download import file_md5
from vitcourse.data.errors import DataFileError

IDX_UBYTE = 0x08
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"{CIFAR_DIR}/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = f"{CIFAR_DIR}/test_batch"


def bad_file(path: Path, problem: str, fix: str) -> DataFileError:
    """A DataFileError whose message is ``<path>: <problem>. Fix: <fix>``."""
    return DataFileError(f"{path}: {problem}. Fix: {fix}")


def verify_md5(path: Path, md5: str, fix: str) -> None:
    """Raise DataFileError unless ``path`` has MD5 ``md5``."""
    actual = file_md5(path)
    if actual != md5:
        raise bad_file(path, f"MD5 is {actual} but the official file's is {md5} "
                             f"(truncated, corrupt, or a different file)", fix)


def read_idx(path: str | os.PathLike, magic: int, fix: str) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes.

    Args:
        path: the ``.gz`` file.
        magic: the magic number the file must start with (IDX_IMAGES_MAGIC or IDX_LABELS_MAGIC).
        fix: what to tell the user to do if the file is bad.

    Returns:
        uint8 array with the shape the header declares, e.g. (N, 28, 28) or (N,).

    Raises:
        DataFileError: not gzip, truncated, wrong magic, or a size that disagrees with the header.
    """
    path = Path(path)
    try:
        raw = gunzip(path)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise bad_file(path, f"is not a complete gzip file ({err})", fix) from err
    return parse_idx(raw, path, magic, fix)


def read_official_idx(path: str | os.PathLike, magic: int, gz_md5: str, content_md5: str | None,
                      fix: str) -> np.ndarray:
    """Read a gzipped IDX file that must be the official one, as :func:`read_idx` does.

    The file passes when its own MD5 is ``gz_md5`` (the published download), or when the MD5 of
    its decompressed bytes is ``content_md5`` (the same content compressed again, as Debian's
    package ships it).

    Raises:
        DataFileError: neither checksum matches (the message gives both, found and expected),
            or the file does not parse.
    """
    path = Path(path)
    actual = file_md5(path)
    if actual == gz_md5:
        return read_idx(path, magic, fix)  # a registered but corrupt file still fails on parsing
    try:
        raw = gunzip(path)
    except (OSError, EOFError, zlib.error) as err:
        content = f"it does not decompress ({err})"
    else:
        found = hashlib.md5(raw).hexdigest()
        if content_md5 is not None and found == content_md5:
            return parse_idx(raw, path, magic, fix)
        content = (f"its decompressed content's MD5 is {found} but the official content's is "
                   f"{content_md5 or 'not known'}")
    raise bad_file(path, f"MD5 is {actual} but the official file's is {gz_md5}, and {content} "
                         f"(truncated, corrupt, or a different file)", fix)


def gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip file (raises OSError, EOFError or zlib.error)."""
    with gzip.open(path, "rb") as handle:
        return handle.read()


def parse_idx(raw: bytes, path: Path, magic: int, fix: str) -> np.ndarray:
    """Decompressed IDX bytes → uint8 array; ``path`` and ``fix`` are for the messages."""
    if len(raw) < 4:
        raise bad_file(path, f"holds only {len(raw)} bytes, too few for an IDX header", fix)
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise bad_file(path, f"starts with IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
                             f"({'images' if magic == IDX_IMAGES_MAGIC else 'labels'})", fix)
    ndim = magic & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise bad_file(path, f"ends inside its IDX header ({len(raw)} bytes)", fix)
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = len(raw) - header_bytes
    if body != int(np.prod(shape)):
        raise bad_file(path, f"header declares shape {shape} ({int(np.prod(shape))} values) "
                             f"but {body} bytes follow", fix)
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape).copy()


def check_images(path: Path, images: np.ndarray, count: int, image_shape: tuple[int, ...],
                 fix: str) -> None:
    """Raise DataFileError unless ``images`` has shape (count, *image_shape)."""
    if images.shape != (count, *image_shape):
        raise bad_file(path, f"holds images of shape {images.shape}, expected {(count, *image_shape)}", fix)


def check_labels(path: Path, labels: np.ndarray, count: int, fix: str) -> None:
    """Raise DataFileError unless ``labels`` has shape (count,) and values in 0..9."""
    if labels.shape != (count,):
        raise bad_file(path, f"holds labels of shape {labels.shape}, expected {(count,)}", fix)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise bad_file(path, f"holds labels from {int(labels.min())} to {int(labels.max())}; "
                             f"they must be 0..9", fix)


def read_cifar_tarball(path: str | os.PathLike, md5: str, fix: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read ``cifar-10-python.tar.gz`` without unpacking it to disk.

    Returns:
        x_train uint8 (N_train, 32, 32, 3), y_train int64 (N_train,),
        x_test uint8 (N_test, 32, 32, 3), y_test int64 (N_test,); channels last.

    Raises:
        DataFileError: wrong MD5, not a gzip tarball, missing batches, or a batch that is
            not a CIFAR-10 dict of (n, 3072) pixels and n labels.
    """
    path = Path(path)
    # Unpickling runs code chosen by whoever wrote the file, so a tampered or swapped
    # tarball could execute anything.  Only a file with the published checksum is unpickled.
    verify_md5(path, md5, fix)
    try:
        with tarfile.open(path, "r:gz") as tar:
            names = set(tar.getnames())
            missing = [m for m in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH) if m not in names]
            if missing:
                found = ", ".join(sorted(names)[:5]) or "nothing"
                raise bad_file(path, f"is not the CIFAR-10 python tarball: it lacks {missing[0]} "
                                     f"(it holds {found})", fix)
            train = [_read_cifar_batch(tar, member, path, fix) for member in CIFAR_TRAIN_BATCHES]
            x_test, y_test = _read_cifar_batch(tar, CIFAR_TEST_BATCH, path, fix)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise bad_file(path, f"is not a readable .tar.gz ({err})", fix) from err
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def _read_cifar_batch(tar: tarfile.TarFile, member: str, path: Path, fix: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch → (n, 32, 32, 3) uint8 images and (n,) int64 labels."""
    handle = tar.extractfile(member)
    if handle is None:
        raise bad_file(path, f"has {member} but it is not a regular file", fix)
    try:
        # The batches were pickled by Python 2; encoding="bytes" keeps their str keys as bytes.
        batch = pickle.load(io.BytesIO(handle.read()), encoding="bytes")
    except Exception as err:  # any unpickling failure means the member is not a CIFAR batch
        raise bad_file(path, f"member {member} is not a readable pickle ({err!r})", fix) from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch)[:5] if isinstance(batch, dict) else type(batch).__name__
        raise bad_file(path, f"member {member} is not a CIFAR-10 batch (no b'data'/b'labels'; got {keys})", fix)
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise bad_file(path, f"member {member} holds pixels {data.dtype}{data.shape} and "
                             f"{len(labels)} labels; expected uint8 (n, 3072) and n labels", fix)
    # Each row is 1024 red, then 1024 green, then 1024 blue values, each 32×32 row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels
