"""Old import paths of names that moved to another module: a module's ``__getattr__`` finds them there.

The training engine split ``vitcourse.cifar`` (and renamed the recipe factories to one spelling);
code written before — notebooks, tests not yet updated — still imports the old names. Each module
that lost names lists where they went, and reading one imports the new home on demand, so no
import cycle is created and the code exists once.
"""

from __future__ import annotations

import importlib
from typing import Callable


def forward_moved_names(module: str, moved: dict[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``module`` (PEP 562).

    ``moved`` maps an old name to its new home: a module (``"vitcourse.augment"``, the same name
    there) or a module and a new name (``"vitcourse.cifar:vit_recipe_for"``). Any other missing
    name raises the usual AttributeError.
    """
    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        home, _, new_name = moved[name].partition(":")
        return getattr(importlib.import_module(home), new_name or name)

    return __getattr__
