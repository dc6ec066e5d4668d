"""Test helpers for vitcourse.data: tiny files in the real on-disk formats, written at test
time, and a local HTTP server that can break a transfer on purpose."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import pickle
import re
import socket
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from vitcourse.data import sources

N_TRAIN_FASHION, N_TEST_FASHION = 6, 4
CIFAR_PER_BATCH = 2  # 5 training batches → 10 training images, 2 test images


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Uncompressed IDX encoding of a uint8 array (magic 0x0000080D for D axes unless given)."""
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def fashion_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Known arrays, keyed by the official file names: (6|4, 28, 28) images, (6|4,) labels."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TRAIN_FASHION, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([0, 9, 3, 3, 5, 1], dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TEST_FASHION, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([7, 2, 8, 6], dtype=np.uint8),
    }


def fashion_files(arrays: dict[str, np.ndarray] | None = None) -> dict[str, bytes]:
    """The four gzipped IDX files' bytes, keyed by file name."""
    arrays = fashion_arrays() if arrays is None else arrays
    return {name: gzip.compress(idx_bytes(array), mtime=0) for name, array in arrays.items()}


def cifar_batch(images: np.ndarray, labels: list[int], batch_label: bytes) -> dict:
    """A batch dict in CIFAR-10's layout: bytes keys, (n, 3072) uint8 rows of R, G, B planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return {b"batch_label": batch_label, b"labels": list(labels), b"data": planes,
            b"filenames": [b"img_%d.png" % i for i in range(len(images))]}


def cifar_arrays(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Known (10, 32, 32, 3) train / (2, 32, 32, 3) test images and their int64 labels."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (5 * CIFAR_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (CIFAR_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(5 * CIFAR_PER_BATCH, dtype=np.int64) % 10
    y_test = np.array([3, 8], dtype=np.int64)
    return x_train, y_train, x_test, y_test


def tarball(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``members`` (name → bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def cifar_members(arrays=None, *, overrides: dict[str, object] | None = None) -> dict[str, bytes]:
    """The members of a cifar-10-python.tar.gz holding ``arrays`` (default the tiny known ones),
    laid out as the official file: ``batches.meta``, five training batches of equal size, one
    test batch and ``readme.html``, each batch a protocol-2 pickle as in the original (written
    by Python 2).  ``overrides`` replaces a member's pickled object."""
    x_train, y_train, x_test, y_test = cifar_arrays() if arrays is None else arrays
    if len(x_train) % 5:
        raise ValueError(f"the official file holds 5 training batches of equal size, not {len(x_train)} images")
    per_batch = len(x_train) // 5
    objects: dict[str, object] = {
        "cifar-10-batches-py/batches.meta": {
            b"label_names": [n.encode() for n in sources.CIFAR10.class_names],
            b"num_cases_per_batch": per_batch, b"num_vis": 32 * 32 * 3},
    }
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        objects[f"cifar-10-batches-py/data_batch_{i + 1}"] = cifar_batch(
            x_train[rows], y_train[rows].tolist(), b"training batch %d of 5" % (i + 1))
    objects["cifar-10-batches-py/test_batch"] = cifar_batch(x_test, y_test.tolist(), b"testing batch 1 of 1")
    objects.update(overrides or {})
    members = {name: pickle.dumps(obj, protocol=2) for name, obj in objects.items()}
    members["cifar-10-batches-py/readme.html"] = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=...\">\n"
    return members


def cifar_tarball(**kwargs) -> bytes:
    return tarball(cifar_members(**kwargs))


def use_fixture_sources(monkeypatch, files: dict[str, bytes], mirror: str = "http://127.0.0.1:9/",
                        cifar_sizes: tuple[int, int] = (5 * CIFAR_PER_BATCH, CIFAR_PER_BATCH)) -> None:
    """Register Sources sized for the fixtures and make the checksum table hold the MD5s of
    ``files`` (name → bytes), so the loaders accept them in place of the real files.
    ``cifar_sizes``: (train, test) images of the CIFAR-10 file among ``files``."""
    monkeypatch.setitem(sources.SOURCES, "fashion-mnist", replace(
        sources.FASHION_MNIST, train_size=N_TRAIN_FASHION, test_size=N_TEST_FASHION, mirrors=(mirror,)))
    monkeypatch.setitem(sources.SOURCES, "cifar10", replace(
        sources.CIFAR10, train_size=cifar_sizes[0], test_size=cifar_sizes[1], mirrors=(mirror,)))
    for name, data in files.items():
        monkeypatch.setitem(sources.PUBLISHED_MD5, name, md5_of(data))
        if name in sources.CONTENT_MD5:
            monkeypatch.setitem(sources.CONTENT_MD5, name, md5_of(gzip.decompress(data)))


def standin_cifar_arrays(n_train: int = 1_000, n_test: int = 1_000, kind: str = "synthetic-cifar"
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n_train`` / ``n_test`` images of a CIFAR stand-in (multiples of 1,000):
    (n, 32, 32, 3) uint8 pixels and (n,) int64 labels, to be written in the official format."""
    from vitcourse.data.synthetic import synthetic_split

    x_train, y_train = synthetic_split(kind, "train", n_train)
    x_test, y_test = synthetic_split(kind, "test", n_test)
    return x_train, y_train, x_test, y_test


def install_official_cifar(monkeypatch, folder: Path, arrays) -> Path:
    """Write ``arrays`` as ``<folder>/cifar10/cifar-10-python.tar.gz`` in the official layout and
    make the loaders find and accept it, and nothing else: ``$VITCOURSE_DATA`` = ``folder``, the
    user cache inside it, the system datasets folder switched off, downloads off, the checksum
    table and the Source sizes swapped for this file.  Returns the file's path."""
    data = cifar_tarball(arrays=arrays)
    write_files(folder / "cifar10", {"cifar-10-python.tar.gz": data})
    monkeypatch.setenv(sources.DATA_ENV, str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder / "cache"))
    monkeypatch.setenv(sources.SYSTEM_DATA_ENV, "")
    monkeypatch.setenv(sources.OFFLINE_ENV, "1")
    use_fixture_sources(monkeypatch, {"cifar-10-python.tar.gz": data},
                        cifar_sizes=(len(arrays[1]), len(arrays[3])))
    return folder / "cifar10" / "cifar-10-python.tar.gz"


def recompressed(files: dict[str, bytes]) -> dict[str, bytes]:
    """The same files compressed again the way Debian's package ships them: the content is the
    same, the ``.gz`` bytes (header name and time stamp, here also the level) are not."""
    return {name: gzip.compress(gzip.decompress(data), compresslevel=6, mtime=1_590_000_000)
            for name, data in files.items()}


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@contextlib.contextmanager
def silent_server_url():
    """A URL on 127.0.0.1 that accepts connections but never answers (a stalled network)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


class FixtureServer:
    """Serve ``files`` (name → bytes) over HTTP on 127.0.0.1 from a background thread.

    Args:
        break_first: the first this-many requests send the headers for the whole body but
            only half the bytes, then hang up (a broken transfer).
        ranges: honour ``Range: bytes=N-`` with a 206 answer (else always send everything).

    ``requests`` records (path, Range header or None) for every request.
    """

    def __init__(self, files: dict[str, bytes], *, break_first: int = 0, ranges: bool = True):
        self.files, self.break_first, self.ranges = files, break_first, ranges
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if server.ranges and match:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if len(server.requests) <= server.break_first:
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> "FixtureServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
