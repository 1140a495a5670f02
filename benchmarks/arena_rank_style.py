"""The baseline side of ``style_bench.py``: arena-rank's ContextualBradleyTerry, sandwich CIs.

Runs in a separate environment that has ``arena-rank`` (and so jax) installed; it is never a
dependency of this project.  Reads the same log with pyarrow (JSONL, as our side does, or
Parquet), builds LMArena's features with arena-rank's own ``ContextualPairDataset``
(unweighted, standardised), fits and computes sandwich intervals.  Prints its timings as JSON.

Usage::

    /path/to/arena-rank-venv/bin/python benchmarks/arena_rank_style.py LOG.jsonl
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow.compute as pc
import pyarrow.json as pj

FEATURES = ("tokens", "headers", "lists", "bold")


def main() -> int:
    t0 = time.perf_counter()
    import pandas as pd
    from arena_rank.models.contextual_bradley_terry import ContextualBradleyTerry
    from arena_rank.utils.data_utils import ContextualPairDataset

    t_import = time.perf_counter() - t0
    t = time.perf_counter()
    path = sys.argv[1]
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        table = pj.read_json(path)
    md = table.column("conv_metadata").combine_chunks()

    def side(key: str, parts: tuple[str, ...] | None) -> np.ndarray:
        col = pc.struct_field(md, key)
        if parts is None:
            return col.to_numpy(zero_copy_only=False).astype(float)
        return sum(
            pc.struct_field(col, p).to_numpy(zero_copy_only=False).astype(float) for p in parts
        )

    heads = tuple(f"h{k}" for k in range(1, 7))
    spec = (
        ("sum_assistant_{}_tokens", None),
        ("header_count_{}", heads),
        ("list_count_{}", ("ordered", "unordered")),
        ("bold_count_{}", ("**", "__")),
    )
    df = pd.DataFrame(
        {
            "model_a": table.column("model_a").to_numpy(zero_copy_only=False),
            "model_b": table.column("model_b").to_numpy(zero_copy_only=False),
            "winner": table.column("winner").to_numpy(zero_copy_only=False),
        }
    )
    for name, (key, parts) in zip(FEATURES, spec, strict=True):
        u, v = side(key.format("a"), parts), side(key.format("b"), parts)
        df[name] = (u - v) / (u + v + 1)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    data = ContextualPairDataset.from_pandas(df, list(FEATURES), reweighted=False)
    t_dataset = time.perf_counter() - t
    t = time.perf_counter()
    model = ContextualBradleyTerry(n_competitors=len(data.competitors), n_features=len(FEATURES))
    res = model.compute_ratings_and_cis(data, ci_method="sandwich")
    lower = np.asarray(res["rating_lower"])  # materialise (jax dispatches asynchronously)
    t_fit = time.perf_counter() - t
    print(json.dumps({
        "import_s": round(t_import, 2), "read_features_s": round(t_read, 2),
        "dataset_s": round(t_dataset, 2), "fit_sandwich_s": round(t_fit, 2),
        "ratings": [float(x) for x in np.asarray(res["ratings"])],
        "competitors": list(res["competitors"]), "lower_finite": bool(np.isfinite(lower).all()),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
