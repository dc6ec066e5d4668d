"""Downloading with urllib: progress bar, resume after a broken transfer, MD5 check, and an
atomic rename, so a file under its final name is always complete and verified.

A transfer writes ``NAME.part`` next to the target.  If the connection drops, the next
attempt asks the server for the missing bytes (HTTP ``Range``) or, where the server does not
support that, starts the file again.  Only a ``.part`` whose MD5 matches is renamed (with
``os.replace``, atomic on one file system) to ``NAME``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping

from tqdm.auto import tqdm

from vitcourse.data.errors import DataFileError, DownloadError
from vitcourse.data.sources import (
    OFFLINE_ENV, Source, expected_md5, offline_requested, placement_instructions, source_dir,
)

# Short, so an offline machine gives up in seconds instead of minutes.  It bounds the
# connect and each read; a read that stalls longer counts as a broken transfer and resumes.
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 3
CHUNK_BYTES = 1 << 16
USER_AGENT = "vitcourse-data/1 (+python urllib)"


class BrokenTransferError(DownloadError):
    """The connection opened but the body stopped short; the ``.part`` file is kept."""


class _ResumeRefusedError(DownloadError):
    """HTTP 416: the ``.part`` is already as long as the file or longer (a stale leftover)."""


def file_md5(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in chunks (constant memory)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` are gathered until they are verified."""
    return dest.with_name(dest.name + ".part")


def _open(url: str, offset: int, timeout: float):
    """Open ``url``, asking for the bytes from ``offset`` on when resuming.

    Raises DownloadError when the server cannot be reached or answers with an HTTP error.
    """
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            raise _ResumeRefusedError(f"{url}: the server cannot resume at byte {offset}") from err
        raise DownloadError(f"{url}: the server answered HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"{url}: cannot connect ({reason})") from err


def _total_size(response, offset: int) -> int | None:
    """Full size of the file from Content-Range (resumed) or Content-Length (whole file)."""
    content_range = response.headers.get("Content-Range", "")
    match = re.search(r"/(\d+)\s*$", content_range)
    if response.status == 206 and match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return int(length) + (offset if response.status == 206 else 0) if length else None


def _transfer(url: str, part: Path, *, timeout: float, progress: bool) -> bool:
    """Append the rest of ``url`` to ``part`` (or rewrite it if the server ignores Range).

    Returns True when bytes kept from an earlier attempt were reused.
    Raises BrokenTransferError when the body ends early or the connection fails mid-way.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except _ResumeRefusedError as err:
        part.unlink()  # so the next attempt starts from scratch
        raise BrokenTransferError(str(err)) from err
    with response:
        resumed = offset > 0 and response.status == 206
        if not resumed:
            offset = 0  # the server sent the whole file: start the .part again
        total = _total_size(response, offset)
        received = offset
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
        ) as bar:
            try:
                while block := response.read(CHUNK_BYTES):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.HTTPException, OSError) as err:
                raise BrokenTransferError(
                    f"{url}: transfer broke after {received} bytes ({err})") from err
    if total is not None and received < total:
        raise BrokenTransferError(f"{url}: transfer broke after {received} of {total} bytes")
    return resumed


def download(url: str, dest: str | os.PathLike, md5: str, *, timeout: float = DEFAULT_TIMEOUT_S,
             attempts: int = DEFAULT_ATTEMPTS, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, verify its MD5, then move it into place atomically.

    A broken transfer is retried (resuming) up to ``attempts`` times in all.  If the
    finished file fails the checksum after a resume, it is fetched once more from scratch.

    Raises:
        DownloadError: the server is unreachable, answers with an HTTP error, or the
            transfer broke ``attempts`` times (the ``.part`` is kept for the next run).
        DataFileError: the downloaded bytes do not have MD5 ``md5`` (nothing is kept).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts!r}.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    for from_scratch in (False, True):
        if from_scratch:
            part.unlink(missing_ok=True)
        reused = False
        for attempt in range(1, attempts + 1):
            try:
                reused |= _transfer(url, part, timeout=timeout, progress=progress)
                break
            except BrokenTransferError:
                if attempt == attempts:
                    raise
        actual = file_md5(part)
        if actual == md5:
            os.replace(part, dest)
            return dest
        if not reused:  # a clean, complete transfer with the wrong bytes: retrying won't help
            break
    part.unlink(missing_ok=True)
    raise DataFileError(
        f"{url} delivered a file with MD5 {actual}, but {dest.name} must have MD5 {md5}; "
        f"nothing was saved. The mirror may serve a different version: try another mirror "
        f"or place the official file by hand."
    )


def fetch(source: Source, root: str | os.PathLike | None = None, *,
          checksums: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT_S,
          attempts: int = DEFAULT_ATTEMPTS, progress: bool = True) -> list[Path]:
    """Make sure every file of ``source`` is in its folder with the right MD5.

    Files already present and correct are kept; missing or bad ones are downloaded, trying
    each mirror in turn.  Gives up on the first file no mirror can deliver (so an offline
    machine fails after one quick connection attempt per mirror).

    Args:
        checksums: name → MD5 table; default the published one (tests pass their own).

    Returns:
        The paths of the verified files, in ``source.files`` order.

    Raises:
        DownloadError: with the placement instructions, when a file cannot be fetched.
    """
    folder = source_dir(source, root)
    paths = []
    for name in source.files:
        dest = folder / name
        md5 = expected_md5(name, checksums)
        if not (dest.exists() and file_md5(dest) == md5):
            _fetch_one(source, name, dest, md5, root, timeout=timeout, attempts=attempts,
                       progress=progress)
        paths.append(dest)
    return paths


def _fetch_one(source: Source, name: str, dest: Path, md5: str, root, *, timeout: float,
               attempts: int, progress: bool) -> None:
    """Download one file from the first mirror that delivers it intact."""
    if offline_requested():
        failures = [f"${OFFLINE_ENV} is set, so no download was tried"]
    else:
        failures = []
        for url in source.urls(name):
            try:
                download(url, dest, md5, timeout=timeout, attempts=attempts, progress=progress)
                return
            except (DownloadError, DataFileError) as err:
                failures.append(str(err))
    reasons = "\n".join(f"  - {failure}" for failure in failures)
    raise DownloadError(
        f"could not download {name} for {source.title}:\n{reasons}\n\n"
        f"{placement_instructions(source, root)}",
        reasons=failures,
    )
