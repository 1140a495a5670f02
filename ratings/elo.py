"""Online Elo: one pass over the battles in time order.

Kept for comparison with the Bradley-Terry ratings: online Elo depends on the order of the
battles and keeps drifting with a fixed K, which is why the leaderboard defaults to BT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ratings.data import A_SCORE, Battles

__all__ = ["EloOptions", "battle_order", "online_elo"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EloOptions:
    """Online Elo settings (the LMSYS defaults: K=4, base 10, scale 400, start 1000)."""

    k: float = 4.0
    base: float = 10.0
    scale: float = 400.0
    init: float = 1000.0

    def __post_init__(self) -> None:
        if not (self.k > 0 and self.base > 1 and self.scale > 0):
            raise ValueError(f"invalid Elo options {self}: need k > 0, base > 1, scale > 0")


def battle_order(battles: Battles) -> npt.NDArray[np.int64]:
    """Indices of the battles in time order (file order when there are no timestamps)."""
    if battles.tstamp is None:
        return np.arange(len(battles))
    return np.argsort(battles.tstamp, kind="stable")


def online_elo(
    battles: Battles,
    options: EloOptions | None = None,
    order: npt.NDArray[np.int64] | None = None,
) -> FloatArray:
    """Run online Elo and return the final rating of every model.

    Parameters
    ----------
    battles
        The battles.  Ties (both kinds) score 0.5; a battle's weight, if any, scales its K.
    options
        Elo settings.
    order
        Order in which to play the battles (default :func:`battle_order`).

    Returns
    -------
    numpy.ndarray
        Ratings aligned with ``battles.models``.
    """
    opt = options or EloOptions()
    idx = battle_order(battles) if order is None else order
    a = battles.a[idx].tolist()
    b = battles.b[idx].tolist()
    sa = A_SCORE[battles.outcome[idx]].tolist()
    kw = [opt.k] * len(a) if battles.weight is None else (opt.k * battles.weight[idx]).tolist()
    r = [opt.init] * battles.n_models
    base, scale = opt.base, opt.scale
    # A plain Python loop over lists: the update is inherently sequential, and list
    # indexing is several times faster than numpy scalar access.
    for i, j, s, k in zip(a, b, sa, kw, strict=True):
        ri, rj = r[i], r[j]
        ea = 1.0 / (1.0 + base ** ((rj - ri) / scale))
        delta = k * (s - ea)
        r[i] = ri + delta
        r[j] = rj - delta
    return np.asarray(r)
