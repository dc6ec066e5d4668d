"""Fixed sinusoidal position codes: one row of numbers per seat, in 1D and on a 2D grid.

1D (the 2017 Transformer recipe): for seat ``pos`` and slot pair ``i`` of a code ``D`` wide,

    code[pos, 2i]   = sin(pos / base^(2i/D))
    code[pos, 2i+1] = cos(pos / base^(2i/D))

Early pairs turn fast (they tell neighbours apart), late pairs slowly (they tell far
seats apart), so no two seats get the same row.

2D (for a grid of patches): the first half of the width is the 1D code of the patch's
row, the second half the 1D code of its column. Patches sharing a row share the first
half exactly; patches sharing a column share the second half.

Any position table, fixed or learned, can be looked at the way the ViT paper looks at its
trained one (its Figure 7, centre): the cosine similarity of every patch's row with every other
row, laid out as the image grid (:func:`cosine_similarity_grid`), and summarised by how similar
a patch is to its neighbours and to far patches (:func:`similarity_by_distance`,
:func:`locality_contrast`).
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


def grid_distances(n_rows: int, n_cols: int) -> np.ndarray:
    """Steps between every two patches of the grid, moving along rows and columns (Manhattan).

    Returns (L, L) ints, L = n_rows·n_cols in reading order; 1 for side neighbours, 0 on the diagonal.
    """
    coords = grid_coordinates(n_rows, n_cols)                       # (L, 2)
    return np.abs(coords[:, None, :] - coords[None, :, :]).sum(-1)  # (L, L)


def cosine_similarity_grid(table, n_rows: int, n_cols: int) -> np.ndarray:
    """Cosine similarity of each position's row with every other row, laid out as the grid.

    Args:
        table: (n_rows·n_cols, D) position table in reading order (a NumPy array or a torch
            tensor, e.g. a trained ViT's ``positions`` parameter).
        n_rows, n_cols: the patch grid.

    Returns:
        (n_rows, n_cols, n_rows, n_cols) float64: ``[r, c]`` is the (n_rows, n_cols) map of patch
        (r, c)'s similarity with every patch; ``[r, c, r, c]`` is 1.

    Raises:
        ValueError: if the table is not 2D, its row count is not the grid's, or a row is all zeros
            (its direction, and so its cosine, is undefined).
    """
    _check_count("n_rows", n_rows)
    _check_count("n_cols", n_cols)
    if hasattr(table, "detach"):
        table = table.detach().cpu().numpy()
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] != n_rows * n_cols:
        raise ValueError(
            f"the position table must be (n_rows·n_cols, D) = ({n_rows * n_cols}, D) for a "
            f"{n_rows} × {n_cols} grid, got shape {table.shape}; pass the table without a batch "
            "axis or a CLS row."
        )
    norms = np.linalg.norm(table, axis=1)                          # (L,)
    if (norms == 0).any():
        zero = int(np.flatnonzero(norms == 0)[0])
        raise ValueError(f"position {zero} (row {zero // n_cols}, column {zero % n_cols}) is all zeros: "
                         "its cosine similarity is undefined.")
    unit = table / norms[:, None]                                  # (L, D)
    return (unit @ unit.T).reshape(n_rows, n_cols, n_rows, n_cols)


def similarity_by_distance(similarity: np.ndarray) -> np.ndarray:
    """Mean similarity of two different patches at each grid distance (:func:`grid_distances`).

    Args:
        similarity: (n_rows, n_cols, n_rows, n_cols), as :func:`cosine_similarity_grid` returns.

    Returns:
        (n_rows + n_cols − 1,): entry d is the mean over all ordered pairs d steps apart; entry 0
        (a patch with itself) is NaN, as it says nothing about neighbours.
    """
    n_rows, n_cols = _grid_of(similarity)
    flat = similarity.reshape(n_rows * n_cols, n_rows * n_cols)
    distances = grid_distances(n_rows, n_cols)
    means = np.full(n_rows + n_cols - 1, np.nan)
    for d in range(1, len(means)):
        means[d] = flat[distances == d].mean()
    return means


def locality_contrast(similarity: np.ndarray, far: int = 4) -> tuple[float, float]:
    """(mean similarity of side neighbours, mean similarity of patches ``far`` or more steps apart).

    A table that has learnt where its patches sit (like the fixed 2D code) gives the first well
    above the second; an untrained random table gives both near 0.

    Raises:
        ValueError: if no two patches of the grid are ``far`` steps apart.
    """
    n_rows, n_cols = _grid_of(similarity)
    if not isinstance(far, (int, np.integer)) or not 2 <= far <= n_rows + n_cols - 2:
        raise ValueError(f"far must be an int from 2 to {n_rows + n_cols - 2} (the grid's longest "
                         f"distance) on a {n_rows} × {n_cols} grid, got {far!r}.")
    flat = similarity.reshape(n_rows * n_cols, n_rows * n_cols)
    distances = grid_distances(n_rows, n_cols)
    return float(flat[distances == 1].mean()), float(flat[distances >= far].mean())


def _grid_of(similarity: np.ndarray) -> tuple[int, int]:
    """(n_rows, n_cols) of a (n_rows, n_cols, n_rows, n_cols) similarity array, checked."""
    shape = np.shape(similarity)
    if len(shape) != 4 or shape[:2] != shape[2:]:
        raise ValueError(f"want a (n_rows, n_cols, n_rows, n_cols) similarity array from "
                         f"cosine_similarity_grid, got shape {shape}.")
    return shape[0], shape[1]
