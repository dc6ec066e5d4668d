"""Print the values a built chapter glued (myst-nb `glue`), read from _build/jupyter_execute/.

    python tools/glued.py 07_attention_maps_dino dino_knn_trained dino_knn_untrained
    python tools/glued.py 08_deit                     # every glued name of the chapter

myst-nb writes each executed chapter's glued outputs next to its notebook as
``<chapter>.glue.json``; the value is the text the page shows (glue's text/plain, unquoted).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

BUILD = Path(__file__).resolve().parents[1] / "_build"


def read_glued(chapter: str, build: Path = BUILD) -> dict[str, str]:
    """{name: shown text} for every value ``book/<chapter>.md`` glued in the last build."""
    path = build / "jupyter_execute" / "book" / f"{chapter}.glue.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the book first with `make book`.")
    values = {}
    for name, output in json.loads(path.read_text()).items():
        text = output.get("data", {}).get("text/plain", "")
        try:
            shown = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            shown = text
        values[name] = str(shown)
    return values


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    values = read_glued(argv[0])
    for name in argv[1:] or sorted(values):
        print(f"{name}\t{values.get(name, '<not glued>')}")
    return 0 if all(name in values for name in argv[1:]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
