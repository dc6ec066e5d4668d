"""``python -m vitcourse.data fetch fashion-mnist cifar10 [--root DIR]``

Downloads and verifies the real data sets.  Exits 0 when every requested data set is in
place, 1 (after printing placement instructions) when one could not be fetched.
"""

from __future__ import annotations

import argparse
import sys

from vitcourse.data.download import DEFAULT_TIMEOUT_S, fetch
from vitcourse.data.errors import DownloadError
from vitcourse.data.sources import SOURCES, data_root, get_source, source_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vitcourse.data",
                                     description="Fetch the course's real data sets.")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="download and checksum-verify data sets")
    fetch_cmd.add_argument("names", nargs="+", choices=sorted(SOURCES), metavar="NAME",
                           help=f"data sets to fetch: {', '.join(sorted(SOURCES))}")
    fetch_cmd.add_argument("--root", default=None,
                           help=f"data folder (default: $VITCOURSE_DATA or {data_root()})")
    fetch_cmd.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                           help="seconds to wait for a connection or a read (default %(default)s)")
    fetch_cmd.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    failed = []
    for name in dict.fromkeys(args.names):  # each once, in the order given
        source = get_source(name)
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
