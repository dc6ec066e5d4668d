"""``python -m vitcourse.data fetch fashion-mnist cifar10 [--root DIR]`` and
``python -m vitcourse.data status``

``fetch`` downloads and verifies the real data sets; a data set already found in a folder the
loaders look in (the system datasets folder included) and verified is not downloaded again.
Exits 0 when every requested data set is in place, 1 (after printing placement instructions)
when one could not be fetched.

``status`` says, per data set, where it was found, whether its files are the official ones,
and how to get it where it is missing.  Exits 1 when a file that was found is bad, else 0.
"""

from __future__ import annotations

import argparse
import sys

from vitcourse.data.download import DEFAULT_TIMEOUT_S, fetch
from vitcourse.data.errors import DataError, DownloadError
from vitcourse.data.loaders import data_status, locate, read_real
from vitcourse.data.sources import (
    SOURCES, Source, data_root, get_source, is_system_dir, placement_instructions, source_dir,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitcourse.data",
                                     description="Fetch the course's real data sets, or say where they are.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="download and checksum-verify data sets")
    fetch_cmd.add_argument("names", nargs="+", choices=sorted(SOURCES), metavar="NAME",
                           help=f"data sets to fetch: {', '.join(sorted(SOURCES))}")
    fetch_cmd.add_argument("--root", default=None,
                           help=f"data folder (default: $VITCOURSE_DATA or {data_root()})")
    fetch_cmd.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                           help="seconds to wait for a connection or a read (default %(default)s)")
    fetch_cmd.add_argument("--quiet", action="store_true", help="no progress bars")
    status_cmd = commands.add_parser("status", help="where each data set is, verified or not, how to get it")
    # argparse rejects an empty list when nargs="*" has choices: names are checked by get_source.
    status_cmd.add_argument("names", nargs="*", metavar="NAME",
                            help=f"data sets to report: {', '.join(sorted(SOURCES))} (default: all)")
    status_cmd.add_argument("--root", default=None, help="data folder to look in first")
    return parser


def where(source: Source, folder) -> str:
    """``folder``, said with what kind of folder it is."""
    kind = "system datasets folder, read only" if is_system_dir(folder) else "data folder"
    return f"{folder} ({kind})"


def status(source: Source, root=None) -> tuple[bool, str]:
    """(ok, report): where ``source`` was found and whether its files verify; ok is False only
    when a file that was found is bad."""
    found = data_status(source, root)
    if found.folder is None:
        looked = "\n".join(f"    {folder}" for folder in found.searched)
        how = "\n".join(f"  {line}" for line in placement_instructions(source, root).splitlines())
        return True, f"{source.key}: not found. Looked in:\n{looked}\n{how}"
    if not found.verified:
        return False, f"{source.key}: found in {where(source, found.folder)}, but a file is bad:\n  {found.problem}"
    return True, f"{source.key}: found in {where(source, found.folder)}: verified, the official files."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        try:
            sources = [get_source(name) for name in dict.fromkeys(args.names or sorted(SOURCES))]
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        results = [status(source, args.root) for source in sources]
        print("\n\n".join(report for _, report in results))
        return 0 if all(ok for ok, _ in results) else 1
    failed = []
    for name in dict.fromkeys(args.names):  # each once, in the order given
        source = get_source(name)
        found = locate(source, args.root)
        if found is not None and found != source_dir(source, args.root):
            try:
                read_real(source, found, args.root)
            except DataError as err:
                print(f"note: {source.title} in {found} is not usable ({err}); downloading a copy.",
                      file=sys.stderr)
            else:
                print(f"{source.title}: already in {where(source, found)}, verified; nothing to download.")
                continue
        try:
            fetch(source, args.root, timeout=args.timeout, progress=not args.quiet)
        except DownloadError as err:
            print(f"error: {err}\n", file=sys.stderr)
            failed.append(name)
        else:
            print(f"{source.title}: all files present and verified in {source_dir(source, args.root)}")
    if failed:
        print(f"Could not fetch: {', '.join(failed)} (see the instructions above).", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
