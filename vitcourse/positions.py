"""Fixed sinusoidal position codes: one row of numbers per seat, in 1D and on a 2D grid.

1D (the 2017 Transformer recipe): for seat ``pos`` and slot pair ``i`` of a code ``D`` wide,

    code[pos, 2i]   = sin(pos / base^(2i/D))
    code[pos, 2i+1] = cos(pos / base^(2i/D))

Early pairs turn fast (they tell neighbours apart), late pairs slowly (they tell far
seats apart), so no two seats get the same row.

2D (for a grid of patches): the first half of the width is the 1D code of the patch's
row, the second half the 1D code of its column. Patches sharing a row share the first
half exactly; patches sharing a column share the second half.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BASE = 10_000.0


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}.")


def sinusoidal_positions(n_positions: int, width: int, base: float = DEFAULT_BASE) -> np.ndarray:
    """The 1D sin/cos table, sines in even slots and cosines in odd slots.

    Args:
        n_positions: number of seats L.
        width: code width D; must be even (slots come in sin/cos pairs).
        base: the wavelength scale, 10,000 in the original Transformer.

    Returns:
        (L, D) float64; row ``pos`` is the code of seat ``pos``.

    Raises:
        ValueError: if ``width`` is not a positive even int.
    """
    _check_count("n_positions", n_positions)
    if not isinstance(width, (int, np.integer)) or width < 2 or width % 2:
        raise ValueError(
            f"width must be a positive even int (sin and cos come in pairs), got {width!r}."
        )
    seats = np.arange(n_positions, dtype=np.float64)[:, None]          # (L, 1)
    pair_exponent = np.arange(0, width, 2, dtype=np.float64) / width   # (D/2,) = 2i/D
    angles = seats / base**pair_exponent                               # (L, D/2)
    table = np.empty((n_positions, width))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


def grid_coordinates(n_rows: int, n_cols: int) -> np.ndarray:
    """(row, col) of every patch in reading order: (n_rows·n_cols, 2) ints."""
    _check_count("n_rows", n_rows)
    _check_count("n_cols", n_cols)
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    return np.stack([rows, cols], axis=1)


def sinusoidal_positions_2d(
    n_rows: int, n_cols: int, width: int, base: float = DEFAULT_BASE
) -> np.ndarray:
    """2D codes for an n_rows × n_cols grid of patches, in reading (row-major) order.

    Args:
        n_rows, n_cols: the patch grid.
        width: code width D; must be a multiple of 4 (two halves, each made of sin/cos pairs).
        base: as in :func:`sinusoidal_positions`.

    Returns:
        (n_rows·n_cols, D): ``[code_1d(row) | code_1d(col)]`` for each patch, each half D/2 wide.

    Raises:
        ValueError: if ``width`` is not a positive multiple of 4.
    """
    if not isinstance(width, (int, np.integer)) or width < 4 or width % 4:
        raise ValueError(
            f"width must be a positive multiple of 4 for 2D codes (half for the row, half for "
            f"the column, each half made of sin/cos pairs), got {width!r}."
        )
    coords = grid_coordinates(n_rows, n_cols)
    half = width // 2
    row_codes = sinusoidal_positions(n_rows, half, base)[coords[:, 0]]   # (L, D/2)
    col_codes = sinusoidal_positions(n_cols, half, base)[coords[:, 1]]   # (L, D/2)
    return np.concatenate([row_codes, col_codes], axis=1)
