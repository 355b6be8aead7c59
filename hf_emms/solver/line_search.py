"""One-dimensional maximisation on a bracketing grid, then golden section: used for the GCV ridge and
LogME's t = alpha / beta, each of which is a smooth function of one log-scale parameter."""

from __future__ import annotations

from typing import Callable

import numpy as np

_RATIO = (np.sqrt(5) - 1) / 2


def grid_golden_max(
    f: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, n_problems: int, steps: int = 40,
    grid_values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``n_problems`` independent functions of one variable at once.

    Parameters
    ----------
    f : callable
        Maps points of shape (n_problems,) to values of shape (n_problems,): problem j evaluated at x[j].
    grid : ndarray of shape (G,)
        Increasing points; each problem's maximum is bracketed by the neighbours of its best grid point
        and refined by ``steps`` golden-section steps (the bracket shrinks by 0.618 per step).

    Returns
    -------
    x, value : ndarray of shape (n_problems,)
        The argmax and the maximum: the better of the refined point and the best grid point.
    """
    values = np.stack([f(np.full(n_problems, g)) for g in grid]) if grid_values is None else grid_values  # (G, n_problems)
    best = values.argmax(0)
    lo, hi = grid[np.maximum(best - 1, 0)], grid[np.minimum(best + 1, len(grid) - 1)]
    c, d = hi - _RATIO * (hi - lo), lo + _RATIO * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(steps):  # each step keeps one interior point and its value: one new evaluation per step
        left = fc >= fd
        lo, hi = np.where(left, lo, c), np.where(left, d, hi)
        new = np.where(left, hi - _RATIO * (hi - lo), lo + _RATIO * (hi - lo))
        f_new = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, f_new, fd), np.where(left, fc, f_new))
    x = (lo + hi) / 2
    refined = f(x)
    on_grid = values[best, np.arange(n_problems)]
    better = refined >= on_grid
    return np.where(better, x, grid[best]), np.where(better, refined, on_grid)
