"""vitcourse.data, all offline: fixture files in the real formats, a local HTTP server,
every bad-input path, and the synthetic stand-in's determinism and learnability."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import tests.support.data_files as fx
from vitcourse.data import (
    DataFileError, DataUnavailableError, Dataset, DownloadError, SyntheticDataWarning,
    data_root, download, fetch, get_source, load_cifar10, load_fashion_mnist,
    load_fashion_mnist_csv, load_standin,
)
from vitcourse.data import __main__ as cli
from vitcourse.data import formats, sources, synthetic, tables
from vitcourse.data.download import part_path

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FIX = "delete it and refetch"


@pytest.fixture(autouse=True)
def isolated_data(tmp_path, monkeypatch):
    """Every test gets an empty data folder, no user cache, no system datasets folder and no
    network unless it asks for one."""
    monkeypatch.setenv("VITCOURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("VITCOURSE_SYSTEM_DATA", "")
    monkeypatch.setenv("VITCOURSE_OFFLINE", "1")
    monkeypatch.setenv("VITCOURSE_PROFILE", "quick")
    return tmp_path / "data"


@pytest.fixture
def fashion_folder(isolated_data, monkeypatch):
    """The tiny Fashion-MNIST fixture files placed in the data folder, checksums registered."""
    files = fx.fashion_files()
    fx.use_fixture_sources(monkeypatch, files)
    fx.write_files(isolated_data / "fashion-mnist", files)
    return isolated_data / "fashion-mnist"


@pytest.fixture
def cifar_path(isolated_data, monkeypatch):
    data = fx.cifar_tarball()
    fx.use_fixture_sources(monkeypatch, {"cifar-10-python.tar.gz": data})
    fx.write_files(isolated_data / "cifar10", {"cifar-10-python.tar.gz": data})
    return isolated_data / "cifar10" / "cifar-10-python.tar.gz"


# --- sources and data_root ------------------------------------------------------------

def test_published_checksums_are_the_ones_in_the_issue():
    assert sources.PUBLISHED_MD5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    }
    assert sources.FASHION_MNIST.class_names == FASHION_CLASSES


def test_data_root_prefers_argument_then_environment_then_user_cache(tmp_path, monkeypatch):
    assert data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("VITCOURSE_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("VITCOURSE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "vitcourse"


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; choose one of cifar10, fashion-mnist"):
        get_source("mnist")
    with pytest.raises(ValueError, match=r"no checksum is known for 'x.gz'"):
        sources.expected_md5("x.gz")


# --- IDX reader ---------------------------------------------------------------------

def test_read_idx_parses_images_and_labels_to_the_written_arrays(tmp_path):
    arrays = fx.fashion_arrays()
    fx.write_files(tmp_path, fx.fashion_files(arrays))
    images = formats.read_idx(tmp_path / "train-images-idx3-ubyte.gz", formats.IDX_IMAGES_MAGIC, FIX)
    labels = formats.read_idx(tmp_path / "train-labels-idx1-ubyte.gz", formats.IDX_LABELS_MAGIC, FIX)
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28)
    np.testing.assert_array_equal(images, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, [0, 9, 3, 3, 5, 1])


def test_idx_header_is_big_endian_magic_then_sizes():
    raw = fx.idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])


@pytest.mark.parametrize("content, problem", [
    (lambda good: good[: len(good) // 2], r"is not a complete gzip file"),
    (lambda good: b"<html>404 Not Found</html>", r"is not a complete gzip file"),
    (lambda good: gzip.compress(fx.idx_bytes(np.zeros(3, np.uint8))),
     r"starts with IDX magic number 0x00000801, expected 0x00000803 \(images\)"),
    (lambda good: gzip.compress(fx.idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-5]),
     r"header declares shape \(2, 28, 28\) \(1568 values\) but 1563 bytes follow"),
    (lambda good: gzip.compress(b"\x00\x00"), r"holds only 2 bytes, too few for an IDX header"),
])
def test_read_idx_names_the_file_the_problem_and_the_fix(tmp_path, content, problem):
    good = fx.fashion_files()["train-images-idx3-ubyte.gz"]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content(good))
    with pytest.raises(DataFileError, match=rf"{path}: {problem}.*Fix: {FIX}"):
        formats.read_idx(path, formats.IDX_IMAGES_MAGIC, FIX)


# --- Fashion-MNIST loader -------------------------------------------------------------

def test_load_fashion_mnist_returns_the_fixture_arrays(fashion_folder):
    arrays = fx.fashion_arrays()
    ds = load_fashion_mnist()
    assert (ds.name, ds.synthetic, ds.class_names) == ("fashion-mnist", False, FASHION_CLASSES)
    assert ds.x_train.shape == (6, 28, 28) and ds.x_test.shape == (4, 28, 28)
    assert (ds.x_train.dtype, ds.y_train.dtype, ds.y_test.dtype) == (np.uint8, np.int64, np.int64)
    x_train, y_train, x_test, y_test = ds.arrays()
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_train, [0, 9, 3, 3, 5, 1])
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, [7, 2, 8, 6])
    assert str(fashion_folder) in ds.note and "real Fashion-MNIST" in ds.note


def test_a_file_with_the_wrong_checksum_is_named_with_the_fix(fashion_folder):
    path = fashion_folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(fx.idx_bytes(np.array([7, 2, 8, 5], np.uint8))))
    expected = sources.PUBLISHED_MD5["t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(DataFileError, match=(
            rf"{path}: MD5 is [0-9a-f]{{32}} but the official file's is {expected}.*"
            r"Fix: delete it and run `python -m vitcourse.data fetch fashion-mnist`")):
        load_fashion_mnist(allow_synthetic=True)  # a bad file is never papered over by the stand-in


def test_a_corrupt_gz_with_a_registered_checksum_still_fails_on_parsing(fashion_folder, monkeypatch):
    path = fashion_folder / "train-images-idx3-ubyte.gz"
    truncated = path.read_bytes()[:100]
    path.write_bytes(truncated)
    monkeypatch.setitem(sources.PUBLISHED_MD5, path.name, fx.md5_of(truncated))
    with pytest.raises(DataFileError, match=rf"{path}: is not a complete gzip file"):
        load_fashion_mnist()


def test_wrong_split_sizes_name_the_file_and_both_shapes(fashion_folder, monkeypatch):
    path = fashion_folder / "train-images-idx3-ubyte.gz"
    data = gzip.compress(fx.idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    path.write_bytes(data)
    monkeypatch.setitem(sources.PUBLISHED_MD5, path.name, fx.md5_of(data))
    with pytest.raises(DataFileError, match=rf"{path}: holds images of shape \(5, 28, 28\), "
                                            r"expected \(6, 28, 28\)"):
        load_fashion_mnist()


def test_labels_outside_0_to_9_are_rejected(fashion_folder, monkeypatch):
    path = fashion_folder / "train-labels-idx1-ubyte.gz"
    data = gzip.compress(fx.idx_bytes(np.array([0, 1, 2, 3, 4, 12], np.uint8)))
    path.write_bytes(data)
    monkeypatch.setitem(sources.PUBLISHED_MD5, path.name, fx.md5_of(data))
    with pytest.raises(DataFileError, match=rf"{path}: holds labels from 0 to 12; they must be 0..9"):
        load_fashion_mnist()


def test_loaders_return_fresh_writable_arrays(fashion_folder):
    first = load_fashion_mnist()
    first.x_train[0] = 0
    assert load_fashion_mnist().x_train[0].any()
    standin = load_standin("synthetic-fashion")
    standin.x_train[:] = 0
    assert load_standin("synthetic-fashion").x_train.any()


def test_take_keeps_the_first_examples_and_says_so(fashion_folder):
    ds = load_fashion_mnist().take(3, 2)
    np.testing.assert_array_equal(ds.y_train, [0, 9, 3])
    np.testing.assert_array_equal(ds.y_test, [7, 2])
    assert ds.name == "fashion-mnist" and ds.note.endswith("(first 3 train / 2 test examples)")
    with pytest.raises(ValueError, match=r"n_train must be an int in 1\.\.6 for fashion-mnist, got 7"):
        load_fashion_mnist().take(7, 1)


# --- CIFAR-10 reader and loader -------------------------------------------------------

def test_load_cifar10_turns_rgb_planes_into_channels_last_images(cifar_path):
    x_train, y_train, x_test, y_test = fx.cifar_arrays()
    ds = load_cifar10()
    assert (ds.name, ds.synthetic, ds.class_names[0], ds.class_names[-1]) == ("cifar10", False, "airplane", "truck")
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, [3, 8])
    # One pixel by hand: image 3, row 1, column 2, green = plane 1 of batch 2's second row.
    batch_rows = fx.cifar_batch(x_train[2:4], [2, 3], b"")[b"data"]
    assert ds.x_train[3, 1, 2, 1] == batch_rows[1, 1024 + 1 * 32 + 2]


class _PlantsMarker:
    """Unpickling this creates a directory: stands in for code a tampered pickle would run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_the_checksum_is_checked_before_anything_is_unpickled(cifar_path, tmp_path):
    marker = tmp_path / "pickle-ran"
    cifar_path.write_bytes(fx.cifar_tarball(overrides={
        "cifar-10-batches-py/data_batch_1": _PlantsMarker(marker)}))
    with pytest.raises(DataFileError, match=rf"{cifar_path}: MD5 is .* but the official file's is"):
        load_cifar10()
    assert not marker.exists()


@pytest.mark.parametrize("members, problem", [
    ({"cifar-100-python/train": b"x", "cifar-100-python/test": b"y"},
     r"is not the CIFAR-10 python tarball: it lacks cifar-10-batches-py/data_batch_1 "
     r"\(it holds cifar-100-python/test, cifar-100-python/train\)"),
    (fx.cifar_members(overrides={"cifar-10-batches-py/test_batch": {b"data": np.zeros((2, 100), np.uint8),
                                                                      b"labels": [0, 1]}}),
     r"member cifar-10-batches-py/test_batch holds pixels uint8\(2, 100\) and 2 labels; "
     r"expected uint8 \(n, 3072\) and n labels"),
    (fx.cifar_members(overrides={"cifar-10-batches-py/data_batch_3": [1, 2, 3]}),
     r"member cifar-10-batches-py/data_batch_3 is not a CIFAR-10 batch \(no b'data'/b'labels'; got list\)"),
    ({**fx.cifar_members(), "cifar-10-batches-py/data_batch_2": b"not a pickle"},
     r"member cifar-10-batches-py/data_batch_2 is not a readable pickle"),
])
def test_tarballs_that_are_not_cifar10_are_named_with_the_fix(cifar_path, monkeypatch, members, problem):
    data = fx.tarball(members)
    cifar_path.write_bytes(data)
    monkeypatch.setitem(sources.PUBLISHED_MD5, cifar_path.name, fx.md5_of(data))
    with pytest.raises(DataFileError, match=rf"{cifar_path}: {problem}.*Fix: delete it and run "
                                            r"`python -m vitcourse.data fetch cifar10`"):
        load_cifar10()


def test_a_file_that_is_not_a_tarball_is_named(cifar_path, monkeypatch):
    data = gzip.compress(b"hello")
    cifar_path.write_bytes(data)
    monkeypatch.setitem(sources.PUBLISHED_MD5, cifar_path.name, fx.md5_of(data))
    with pytest.raises(DataFileError, match=rf"{cifar_path}: is not a readable \.tar\.gz"):
        load_cifar10()


def test_wrong_cifar_split_size_is_reported(cifar_path, monkeypatch):
    arrays = fx.cifar_arrays()
    data = fx.cifar_tarball(overrides={"cifar-10-batches-py/test_batch": fx.cifar_batch(
        arrays[2][:1], [3], b"testing")})
    cifar_path.write_bytes(data)
    monkeypatch.setitem(sources.PUBLISHED_MD5, cifar_path.name, fx.md5_of(data))
    with pytest.raises(DataFileError, match=r"holds images of shape \(1, 32, 32, 3\), expected \(2, 32, 32, 3\)"):
        load_cifar10()


# --- downloading ------------------------------------------------------------------------

def test_download_verifies_and_moves_the_file_into_place(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "sub" / "file.bin"
    with fx.FixtureServer({"file.bin": payload}) as server:
        assert download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False) == dest
    assert dest.read_bytes() == payload and not part_path(dest).exists()
    assert server.requests == [("file.bin", None)]


def test_a_broken_transfer_resumes_where_it_stopped(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "file.bin"
    with fx.FixtureServer({"file.bin": payload}, break_first=1) as server:
        download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("file.bin", None), ("file.bin", "bytes=25000-")]


def test_a_broken_transfer_restarts_when_the_server_ignores_ranges(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "file.bin"
    with fx.FixtureServer({"file.bin": payload}, break_first=2, ranges=False) as server:
        download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False, attempts=3)
    assert dest.read_bytes() == payload and len(server.requests) == 3


def test_a_transfer_that_keeps_breaking_gives_up_and_keeps_the_part_for_next_time(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "file.bin"
    with fx.FixtureServer({"file.bin": payload}, break_first=99, ranges=False) as server:
        with pytest.raises(DownloadError, match=r"file\.bin: transfer broke after 25000 of 50000 bytes"):
            download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False, attempts=2)
    assert not dest.exists() and part_path(dest).stat().st_size == 25_000
    with fx.FixtureServer({"file.bin": payload}) as server:  # the next run resumes the .part
        download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False)
    assert dest.read_bytes() == payload and server.requests == [("file.bin", "bytes=25000-")]


def test_a_checksum_mismatch_keeps_nothing(tmp_path):
    dest = tmp_path / "file.bin"
    with fx.FixtureServer({"file.bin": b"tampered bytes"}) as server:
        with pytest.raises(DataFileError, match=rf"file\.bin delivered a file with MD5 "
                                                rf"{fx.md5_of(b'tampered bytes')}, but file\.bin must "
                                                rf"have MD5 {'0' * 32}; nothing was saved"):
            download(server.url + "file.bin", dest, "0" * 32, progress=False)
    assert not dest.exists() and not part_path(dest).exists()
    assert len(server.requests) == 1  # a clean transfer with wrong bytes is not retried


def test_a_stale_part_with_wrong_bytes_is_refetched_from_scratch(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(b"\x00" * 20_000)  # left over from some other file
    with fx.FixtureServer({"file.bin": payload}) as server:
        download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("file.bin", "bytes=20000-"), ("file.bin", None)]


def test_a_stale_part_longer_than_the_file_is_dropped_and_refetched(tmp_path):
    payload = os.urandom(50_000)
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(b"\x00" * 60_000)
    with fx.FixtureServer({"file.bin": payload}) as server:
        download(server.url + "file.bin", dest, fx.md5_of(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("file.bin", "bytes=60000-"), ("file.bin", None)]


def test_http_errors_are_reported_with_the_status(tmp_path):
    with fx.FixtureServer({}) as server:
        with pytest.raises(DownloadError, match=r"missing\.bin: the server answered HTTP 404"):
            download(server.url + "missing.bin", tmp_path / "missing.bin", "0" * 32, progress=False)


def test_fetch_repairs_a_corrupt_file_and_keeps_the_good_ones(isolated_data, monkeypatch):
    monkeypatch.delenv("VITCOURSE_OFFLINE")
    files = fx.fashion_files()
    with fx.FixtureServer(files) as server:
        fx.use_fixture_sources(monkeypatch, files, mirror=server.url)
        folder = isolated_data / "fashion-mnist"
        fx.write_files(folder, {**files, "t10k-images-idx3-ubyte.gz": b"corrupted"})
        with pytest.raises(DataFileError, match=rf"{folder / 't10k-images-idx3-ubyte.gz'}: MD5 is"):
            load_fashion_mnist()
        paths = fetch(get_source("fashion-mnist"), progress=False)
        assert [p.name for p in paths] == list(files)
        assert all(p.read_bytes() == files[p.name] for p in paths)
        assert server.requests == [("t10k-images-idx3-ubyte.gz", None)]  # good files are kept
        assert load_fashion_mnist().name == "fashion-mnist"


def test_loaders_fetch_missing_files_themselves(isolated_data, monkeypatch):
    monkeypatch.delenv("VITCOURSE_OFFLINE")
    data = fx.cifar_tarball()
    with fx.FixtureServer({"cifar-10-python.tar.gz": data}) as server:
        fx.use_fixture_sources(monkeypatch, {"cifar-10-python.tar.gz": data}, mirror=server.url)
        ds = load_cifar10(allow_synthetic=False)
    assert ds.name == "cifar10" and ds.x_test.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("network, reason", [("refused", "Connection refused"), ("stalled", "timed out")])
def test_fetch_offline_fails_with_placement_instructions(isolated_data, monkeypatch, network, reason):
    monkeypatch.delenv("VITCOURSE_OFFLINE")
    with (fx.silent_server_url() if network == "stalled" else contextlib.nullcontext(fx.closed_port_url())) as mirror:
        fx.use_fixture_sources(monkeypatch, {}, mirror=mirror)
        with pytest.raises(DownloadError) as caught:
            fetch(get_source("cifar10"), timeout=0.2, progress=False)
    message = str(caught.value)
    assert f"{mirror}cifar-10-python.tar.gz: cannot connect (" in message and reason in message
    assert f"copy them, unchanged, into\n    {isolated_data / 'cifar10'}/" in message
    assert "cifar-10-python.tar.gz  (MD5 c58f30108f718f92721af3b95e74349a)" in message
    assert "python -m vitcourse.data fetch cifar10" in message
    assert not list((isolated_data / "cifar10").glob("*"))  # nothing half-written


# --- the fetch command ----------------------------------------------------------------

def test_fetch_command_offline_exits_nonzero_with_instructions(isolated_data):
    result = subprocess.run(
        [sys.executable, "-m", "vitcourse.data", "fetch", "fashion-mnist", "cifar10"],
        capture_output=True, text=True, env={**os.environ, "VITCOURSE_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 1
    for expected in ("VITCOURSE_OFFLINE is set, so no download was tried",
                     f"{isolated_data / 'fashion-mnist'}/", f"{isolated_data / 'cifar10'}/",
                     "train-images-idx3-ubyte.gz  (MD5 8d4fb7e6c68d591d4c3dfef9ec88bf0d)",
                     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     "Could not fetch: fashion-mnist, cifar10"):
        assert expected in result.stderr


def test_fetch_command_succeeds_against_a_mirror(isolated_data, monkeypatch, capsys):
    monkeypatch.delenv("VITCOURSE_OFFLINE")
    files = fx.fashion_files()
    with fx.FixtureServer(files) as server:
        fx.use_fixture_sources(monkeypatch, files, mirror=server.url)
        assert cli.main(["fetch", "fashion-mnist", "--root", str(isolated_data / "r"), "--quiet"]) == 0
    assert "Fashion-MNIST: all files present and verified" in capsys.readouterr().out
    assert sorted(os.listdir(isolated_data / "r" / "fashion-mnist")) == sorted(files)


def test_fetch_command_rejects_unknown_data_sets(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["fetch", "mnist"])
    assert caught.value.code == 2
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


# --- the system datasets folder (Debian's dataset-fashion-mnist) ----------------------------

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def system_folder(isolated_data, monkeypatch):
    """A system datasets folder holding the fixture files compressed again, as Debian ships them:
    other ``.gz`` bytes than the registered downloads, the same content."""
    files = fx.fashion_files()
    fx.use_fixture_sources(monkeypatch, files)
    system = isolated_data.parent / "system"
    fx.write_files(system / "fashion-mnist", fx.recompressed(files))
    monkeypatch.setenv("VITCOURSE_SYSTEM_DATA", str(system))
    return system / "fashion-mnist"


def test_folders_are_searched_data_folder_then_user_cache_then_system(isolated_data, monkeypatch):
    monkeypatch.setenv("VITCOURSE_SYSTEM_DATA", "/srv/sets")
    source = get_source("fashion-mnist")
    cache = isolated_data.parent / "cache" / "vitcourse"
    assert sources.search_dirs(source) == [isolated_data / "fashion-mnist", cache / "fashion-mnist",
                                           sources.Path("/srv/sets/fashion-mnist")]
    assert sources.search_dirs(source, isolated_data / "r") == [
        isolated_data / "r" / "fashion-mnist", sources.Path("/srv/sets/fashion-mnist")]
    monkeypatch.delenv("VITCOURSE_DATA")
    monkeypatch.delenv("VITCOURSE_SYSTEM_DATA")
    assert sources.search_dirs(source) == [cache / "fashion-mnist", sources.Path(DEBIAN_FASHION)]


def test_a_recompressed_copy_in_the_system_folder_is_read_and_never_written(system_folder):
    before = {p.name: p.read_bytes() for p in system_folder.iterdir()}
    assert all(fx.md5_of(data) != sources.PUBLISHED_MD5[name] for name, data in before.items())
    ds = load_fashion_mnist(allow_synthetic=False)
    assert (ds.name, ds.synthetic) == ("fashion-mnist", False)
    np.testing.assert_array_equal(ds.x_train, fx.fashion_arrays()["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.y_test, [7, 2, 8, 6])
    assert str(system_folder) in ds.note
    assert {p.name: p.read_bytes() for p in system_folder.iterdir()} == before


def test_the_data_folder_is_looked_in_before_the_system_folder(system_folder, isolated_data):
    arrays = fx.fashion_arrays()
    arrays["t10k-labels-idx1-ubyte.gz"] = np.array([1, 1, 1, 1], np.uint8)
    own = fx.fashion_files(arrays)
    fx.write_files(isolated_data / "fashion-mnist", own)
    sources.PUBLISHED_MD5["t10k-labels-idx1-ubyte.gz"] = fx.md5_of(own["t10k-labels-idx1-ubyte.gz"])
    ds = load_fashion_mnist()
    np.testing.assert_array_equal(ds.y_test, [1, 1, 1, 1])
    assert str(isolated_data / "fashion-mnist") in ds.note


def test_a_changed_byte_in_a_recompressed_copy_is_refused_with_both_checksums_and_the_fix(system_folder):
    path = system_folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(content)))
    published = sources.PUBLISHED_MD5[path.name]
    official = sources.CONTENT_MD5[path.name]
    with pytest.raises(DataFileError, match=(
            rf"{path}: MD5 is [0-9a-f]{{32}} but the official file's is {published}, and its decompressed "
            rf"content's MD5 is {fx.md5_of(bytes(content))} but the official content's is {official} .*"
            r"Fix: reinstall the package: `sudo apt-get install --reinstall dataset-fashion-mnist`")):
        load_fashion_mnist(allow_synthetic=True)  # never papered over by the stand-in


def test_a_file_that_does_not_decompress_is_refused_naming_both_checks(system_folder):
    path = system_folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>not here</html>")
    with pytest.raises(DataFileError, match=rf"{path}: MD5 is [0-9a-f]{{32}} but the official file's is "
                                            r"[0-9a-f]{32}, and it does not decompress"):
        load_fashion_mnist()


def test_the_official_content_checksums_are_the_measured_ones():
    assert sources.CONTENT_MD5 == {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    }


def test_status_says_where_each_data_set_is_and_how_to_get_it(system_folder, capsys):
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert (f"fashion-mnist: found in {system_folder} (system datasets folder, read only): verified, "
            f"the official files.") in out
    assert "cifar10: not found. Looked in:" in out
    assert "python -m vitcourse.data fetch cifar10" in out


def test_status_without_the_data_names_the_debian_package(isolated_data, capsys):
    assert cli.main(["status", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist: not found." in out
    assert "sudo apt-get install dataset-fashion-mnist" in out
    assert "python -m vitcourse.data fetch fashion-mnist" in out


def test_status_exits_1_on_a_bad_file(system_folder, capsys):
    (system_folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 20))
    assert cli.main(["status", "fashion-mnist"]) == 1
    assert "a file is bad" in capsys.readouterr().out


def test_fetch_finds_the_system_copy_and_downloads_nothing(system_folder, isolated_data, capsys):
    assert cli.main(["fetch", "fashion-mnist", "--quiet"]) == 0
    assert "already in" in capsys.readouterr().out
    assert not (isolated_data / "fashion-mnist").exists()


@pytest.mark.skipif(not os.path.isdir(DEBIAN_FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package_files_load_as_the_official_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("VITCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VITCOURSE_SYSTEM_DATA", raising=False)
    ds = load_fashion_mnist(download=False, allow_synthetic=False)
    assert ds.name == "fashion-mnist" and DEBIAN_FASHION in ds.note
    assert ds.x_train.shape == (60_000, 28, 28) and ds.x_test.shape == (10_000, 28, 28)
    assert round(float(ds.x_train.mean()), 2) == 72.94 and round(float(ds.x_train.std()), 2) == 90.02
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    # One byte changed, compressed again: refused.
    copy = tmp_path / "fashion-mnist"
    copy.mkdir()
    for name in sources.FASHION_MNIST.files:
        content = gzip.decompress((sources.Path(DEBIAN_FASHION) / name).read_bytes())
        if name == "train-labels-idx1-ubyte.gz":
            content = content[:-1] + bytes([(content[-1] + 1) % 10])
        (copy / name).write_bytes(gzip.compress(content))
    with pytest.raises(DataFileError, match=r"train-labels-idx1-ubyte.gz: MD5 is .* its decompressed content's"):
        load_fashion_mnist(download=False)


# --- falling back to the stand-in -------------------------------------------------------

def test_missing_data_without_the_stand_in_raises_with_instructions(isolated_data):
    with pytest.raises(DataUnavailableError) as caught:
        load_fashion_mnist(download=False, allow_synthetic=False)
    message = str(caught.value)
    assert message.startswith(f"Fashion-MNIST was not found (looked in {isolated_data / 'fashion-mnist'}, "
                              f"{isolated_data.parent / 'cache' / 'vitcourse' / 'fashion-mnist'}) and was "
                              "not downloaded (missing train-images-idx3-ubyte.gz, ")
    assert "the offline stand-in is not allowed here (allow_synthetic=False)" in message
    assert "python -m vitcourse.data fetch fashion-mnist" in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz" in message


def test_the_full_profile_never_falls_back_silently(monkeypatch):
    monkeypatch.setenv("VITCOURSE_PROFILE", "full")
    with pytest.raises(DataUnavailableError, match=r"VITCOURSE_OFFLINE is set\); the offline stand-in "
                                                   r"is not allowed here \(full profile\)"):
        load_cifar10()


def test_the_quick_profile_falls_back_to_a_labelled_stand_in():
    with pytest.warns(SyntheticDataWarning, match=r"Fashion-MNIST is not available .*using the offline "
                                                  r"stand-in 'synthetic-fashion' \(quick profile\)"):
        ds = load_fashion_mnist()
    assert (ds.name, ds.synthetic) == ("synthetic-fashion", True)
    assert ds.note.startswith("offline stand-in: not the real Fashion-MNIST (12,000 train / 2,000 test")


def test_allow_synthetic_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match=r"allow_synthetic must be True, False or None, got 'yes'"):
        load_fashion_mnist(allow_synthetic="yes")


@pytest.mark.parametrize("args, message", [
    (("synthetic-mnist",), r"unknown stand-in 'synthetic-mnist'; choose one of synthetic-fashion, synthetic-cifar"),
    (("synthetic-fashion", "tiny"), r"size must be 'quick' or 'full', got 'tiny'"),
])
def test_load_standin_arguments_are_checked(args, message):
    with pytest.raises(ValueError, match=message):
        load_standin(*args)


# --- the stand-ins themselves ---------------------------------------------------------

@pytest.mark.parametrize("name, image_shape, class_names, sizes", [
    ("synthetic-fashion", (28, 28), FASHION_CLASSES, (12_000, 2_000)),
    ("synthetic-cifar", (32, 32, 3), sources.CIFAR10.class_names, (10_000, 2_000)),
    ("synthetic-cifar-clutter", (32, 32, 3), sources.CIFAR10.class_names, (10_000, 2_000)),
])
def test_stand_ins_have_the_real_layout(name, image_shape, class_names, sizes):
    ds = load_standin(name, "quick")
    assert isinstance(ds, Dataset) and (ds.name, ds.synthetic, ds.class_names) == (name, True, class_names)
    assert ds.x_train.shape == (sizes[0], *image_shape) and ds.x_test.shape == (sizes[1], *image_shape)
    assert (ds.x_train.dtype, ds.y_train.dtype) == (np.uint8, np.int64)
    assert np.bincount(ds.y_train).tolist() == [sizes[0] // 10] * 10  # balanced classes
    assert np.bincount(ds.y_test).tolist() == [sizes[1] // 10] * 10
    assert 0 < ds.x_train.mean() < 255 and ds.x_train.std() > 20


def test_stand_in_is_independent_of_global_random_state():
    synthetic.synthetic_split.cache_clear()
    np.random.seed(1)
    torch.manual_seed(1)
    first = synthetic.synthetic_split("synthetic-fashion", "test", 1000)
    synthetic.synthetic_split.cache_clear()
    np.random.seed(2)
    torch.manual_seed(2)
    second = synthetic.synthetic_split("synthetic-fashion", "test", 1000)
    assert first[0] is not second[0]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def _fingerprint(kind: str, split: str, size: int) -> str:
    images, labels = synthetic.synthetic_split(kind, split, size)
    return hashlib.md5(images.tobytes() + labels.tobytes()).hexdigest()


def test_stand_in_is_the_same_in_a_fresh_process():
    code = ("from vitcourse.data import synthetic; import hashlib; "
            "x, y = synthetic.synthetic_split('synthetic-cifar', 'test', 1000); "
            "print(hashlib.md5(x.tobytes() + y.tobytes()).hexdigest())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == _fingerprint("synthetic-cifar", "test", 1000)


def test_quick_stand_in_is_the_start_of_the_full_one_and_splits_differ():
    small = synthetic.synthetic_split("synthetic-fashion", "train", 1000)
    large = synthetic.synthetic_split("synthetic-fashion", "train", 2000)
    np.testing.assert_array_equal(small[0], large[0][:1000])
    assert not np.array_equal(small[0], synthetic.synthetic_split("synthetic-fashion", "test", 1000)[0])


def test_cached_stand_in_arrays_are_read_only():
    images, _ = synthetic.synthetic_split("synthetic-fashion", "test", 1000)
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0] = 1


@pytest.mark.parametrize("args, message", [
    (("synthetic-mnist", "train", 1000), r"unknown stand-in 'synthetic-mnist'"),
    (("synthetic-fashion", "val", 1000), r"split must be 'train' or 'test', got 'val'"),
    (("synthetic-fashion", "train", 1500), r"size must be a positive multiple of 1000, got 1500"),
])
def test_stand_in_arguments_are_checked(args, message):
    with pytest.raises(ValueError, match=message):
        synthetic.synthetic_split(*args)


def _linear_probe_accuracy(kind: str) -> float:
    """Train softmax regression on 2,000 stand-in images for 5 epochs; test accuracy on 1,000."""
    x_train, y_train = synthetic.synthetic_split(kind, "train", 2000)
    x_test, y_test = synthetic.synthetic_split(kind, "test", 1000)
    features = lambda x: torch.tensor(x.reshape(len(x), -1), dtype=torch.float32) / 255  # noqa: E731
    x, y, xt, yt = features(x_train), torch.tensor(y_train), features(x_test), torch.tensor(y_test)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 10)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return (model(xt).argmax(1) == yt).float().mean().item()


@pytest.mark.parametrize("kind, at_least", [("synthetic-fashion", 0.6), ("synthetic-cifar", 0.4),
                                             ("synthetic-cifar-clutter", 0.4)])
def test_stand_in_is_learnable_but_not_trivial(kind, at_least):
    accuracy = _linear_probe_accuracy(kind)
    assert at_least < accuracy < 0.95, f"{kind}: linear probe accuracy {accuracy:.3f}"  # chance is 0.10


# --- the CSV layout -------------------------------------------------------------------

def test_cifar_loader_returns_the_stand_in_asked_for_and_checks_the_name(monkeypatch, tmp_path):
    monkeypatch.setenv("VITCOURSE_OFFLINE", "1")
    with pytest.warns(SyntheticDataWarning, match="synthetic-cifar-clutter"):
        ds = load_cifar10(root=tmp_path, standin="synthetic-cifar-clutter")
    assert (ds.name, ds.synthetic) == ("synthetic-cifar-clutter", True)
    assert "not the real CIFAR-10" in ds.note
    with pytest.raises(ValueError, match=r"standin must be 'synthetic-cifar' or 'synthetic-cifar-clutter', "
                                         r"got 'synthetic-fashion'"):
        load_cifar10(root=tmp_path, standin="synthetic-fashion")


def _background_colour_by_class(kind: str) -> np.ndarray:
    """(10, 3): the mean background colour (0..1) of each class over 1,000 test images."""
    images, labels = synthetic.synthetic_split(kind, "test", 1000)
    masks = synthetic.synthetic_object_masks("test", 1000, kind)
    background = (masks < 0.01)[..., None]
    return np.stack([(images[labels == c] / 255 * background[labels == c]).sum((0, 1, 2))
                     / background[labels == c].sum() for c in range(10)])


def test_clutter_backgrounds_say_nothing_of_the_class_plain_ones_do():
    clutter = _background_colour_by_class("synthetic-cifar-clutter")
    plain = _background_colour_by_class("synthetic-cifar")
    spread = lambda colours: float(np.abs(colours - colours.mean(0)).max())  # noqa: E731
    assert spread(clutter) < 0.02, clutter      # every class on the same grey-centred clutter
    assert spread(plain) > 0.1, plain           # sky, grass, road ...: a colour per class


def test_clutter_masks_cover_the_smooth_object_not_the_busy_background():
    images, _ = synthetic.synthetic_split("synthetic-cifar-clutter", "test", 1000)
    masks = synthetic.synthetic_object_masks("test", 1000, "synthetic-cifar-clutter")
    assert masks.shape == (1000, 32, 32) and not masks.flags.writeable
    plain_masks = synthetic.synthetic_object_masks("test", 1000)
    assert masks.mean() > 1.3 * plain_masks.mean()           # larger objects than synthetic-cifar
    # neighbouring pixels differ far less inside an object than in the clutter around it
    step = np.abs(np.diff(images.astype(np.float32), axis=2)).sum(-1)        # (N, 32, 31)
    inside = (masks[:, :, 1:] > 0.99) & (masks[:, :, :-1] > 0.99)
    outside = (masks[:, :, 1:] < 0.01) & (masks[:, :, :-1] < 0.01)
    assert step[outside].mean() > 2 * step[inside].mean()
    with pytest.raises(ValueError, match="object masks exist for 'synthetic-cifar' and "
                                         "'synthetic-cifar-clutter', not 'synthetic-fashion'"):
        synthetic.synthetic_object_masks("test", 1000, "synthetic-fashion")


def test_csv_tables_on_the_stand_in_have_the_lesson_layout():
    with pytest.warns(SyntheticDataWarning):
        train_df, test_df = load_fashion_mnist_csv()
    assert list(train_df.columns) == ["label", *[f"pixel{i}" for i in range(1, 785)], "split"]
    assert train_df.shape == (12_000, 786) and test_df.shape == (2_000, 786)
    assert train_df.attrs["dataset"] == "synthetic-fashion" and "not the real" in train_df.attrs["note"]
    assert train_df["split"].head(7).tolist() == ["fold1", "fold2", "fold3", "fold4", "fold5", "fold1", "fold2"]
    assert set(test_df["split"]) == {"test"}
    assert train_df["label"].dtype == np.int64 and train_df["pixel1"].dtype == np.uint8
    assert pd.api.types.is_string_dtype(train_df["split"])
    ds = load_standin("synthetic-fashion")
    np.testing.assert_array_equal(train_df.drop(columns=["label", "split"]).to_numpy().reshape(-1, 28, 28), ds.x_train)
    # The trap the lesson shows: dropping only 'label' leaves the split names among the pixels.
    assert train_df.drop(columns=["label"]).shape[1] == 785
    assert not list((data_root()).glob("**/*.csv"))  # the stand-in writes nothing


def test_csv_tables_are_written_once_from_the_idx_files(fashion_folder):
    train_df, test_df = load_fashion_mnist_csv()
    train_csv, test_csv = tables.csv_paths()
    assert train_csv.parent == fashion_folder and train_csv.exists() and test_csv.exists()
    assert train_df.attrs["dataset"] == "fashion-mnist"
    np.testing.assert_array_equal(test_df["label"], [7, 2, 8, 6])
    assert test_df.loc[2, "pixel30"] == fx.fashion_arrays()["t10k-images-idx3-ubyte.gz"][2, 1, 1]


def test_a_cached_csv_is_read_back_identically(fashion_folder):
    first = load_fashion_mnist_csv()
    os.utime(tables.csv_paths()[0], (0, 0))  # mark it, to see that it is not rewritten
    second = load_fashion_mnist_csv()
    assert tables.csv_paths()[0].stat().st_mtime == 0
    for a, b in zip(first, second):
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                                  # cut off mid-row
    lambda text: text.replace("label,", "lable,", 1),                     # wrong columns
    lambda text: "\n".join(text.splitlines()[:-1]) + "\n",               # a row short
])
def test_a_damaged_cached_csv_is_deleted_and_rebuilt(fashion_folder, damage):
    original, _ = load_fashion_mnist_csv()
    train_csv = tables.csv_paths()[0]
    train_csv.write_text(damage(train_csv.read_text()))
    with pytest.warns(UserWarning, match=rf"{train_csv}: .*deleting it and writing it again"):
        rebuilt, _ = load_fashion_mnist_csv()
    pd.testing.assert_frame_equal(rebuilt, original)
    assert len(pd.read_csv(train_csv)) == 6
    assert not list(fashion_folder.glob("*.tmp"))


# --- the setup check's table of data sets ---------------------------------------------

def test_the_status_table_says_where_each_data_set_is_and_who_uses_it(fashion_folder, monkeypatch):
    monkeypatch.setenv("HOME", str(fashion_folder.parents[1]))  # the data folder is ~/data
    table = tables.data_status_table()
    assert table.index.name == "data set" and list(table.index) == ["fashion-mnist", "cifar10"]
    assert list(table.columns) == ["found in", "official files", "used by"]
    assert table.loc["fashion-mnist"].tolist() == [
        "~/data/fashion-mnist", "yes", "chapters 4 and 5, assignment 2"]
    assert table.loc["cifar10"].tolist() == ["not found", "–", "chapters 6, 7, 8 and 9"]


def test_the_status_table_flags_files_that_are_not_the_official_ones(fashion_folder):
    path = fashion_folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-3])
    row = tables.data_status_table().loc["fashion-mnist"]
    assert row["found in"] == str(fashion_folder) and row["official files"] == "NO"


@pytest.mark.parametrize("used, words", [
    (((4, 5), (2,)), "chapters 4 and 5, assignment 2"),
    (((6, 7, 8, 9), ()), "chapters 6, 7, 8 and 9"),
    (((3,), ()), "chapter 3"),
    (((), (1, 3)), "assignments 1 and 3"),
    (((4,), (2, 3)), "chapter 4, assignments 2 and 3"),
    (((), ()), "none"),
])
def test_used_by_lists_chapters_then_assignments_in_words(monkeypatch, used, words):
    monkeypatch.setitem(tables.USED_BY, "fashion-mnist", used)
    assert tables.used_by("fashion-mnist") == words


def test_a_data_set_missing_from_used_by_is_named_with_the_fix(monkeypatch):
    monkeypatch.delitem(tables.USED_BY, "cifar10")
    with pytest.raises(KeyError, match=r"'cifar10' in vitcourse.data.tables.USED_BY .*add the chapters"):
        tables.data_status_table()


# What loads each data set in a chapter's or an assignment's code: its loader (and the CSV tables
# built from it), or assignment 2's split, which loads Fashion-MNIST.
LOADS = {"fashion-mnist": r"\bload_fashion_mnist\w*\(|\bload_split\(", "cifar10": r"\bload_cifar10\("}


def test_used_by_is_what_the_chapters_and_assignments_load():
    import re
    from pathlib import Path

    repository = Path(tables.__file__).resolve().parents[2]
    book, solutions = repository / "book", repository / "solutions"
    assert set(LOADS) == set(sources.SOURCES) == set(tables.USED_BY)
    for key, pattern in LOADS.items():
        chapters = tuple(sorted(int(p.name[:2]) for p in book.glob("[0-9][0-9]_*.md")
                                if re.search(pattern, p.read_text())))
        assignments = tuple(sorted(int(p.parent.name.removeprefix("assignment"))
                                   for p in solutions.glob("assignment*/*.md")
                                   if re.search(pattern, p.read_text())))
        assert tables.USED_BY[key] == (chapters, assignments), key
