"""The Grafana dashboard in deploy/ only queries metrics the app really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from arena.metrics import ArenaMetrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "arena-dashboard.json"


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    metrics = ArenaMetrics()
    exported = {
        sample.name for family in metrics.registry.collect() for sample in family.samples
    } | {f"{family.name}_total" for family in metrics.registry.collect()}
    # Histograms expose _bucket/_count/_sum only once observed: add them from the families.
    for family in metrics.registry.collect():
        if family.type == "histogram":
            exported |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
    exprs = [t["expr"] for panel in dash["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        names = set(re.findall(r"\b(arena_[a-z_]+)", expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)
