"""The run's headline numbers per model and seed, from its tables: final training
accuracy and zero-shot accuracy on each held-out task (both scoring rules).

    python -m instructnet.analysis.headline [RESULTS]      # default: results

prints a Markdown table (one row per holdout, model and seed, then the mean over seeds
per model). Training accuracy is the last epoch's mean over the model's training tasks
of the per-batch accuracy during that epoch (``results/tables/train_logs.parquet``, the
criterion's rule, strict by default); zero-shot is batch 0 of the held-out test
(``results/tables/zero_shot.parquet``), mean over repeats.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .stats import order_models, scorings


def headline(results: str | Path = "results") -> pd.DataFrame:
    """DataFrame(holdout, model, seed, epochs, train_accuracy, train_min, then
    ``<task> (<scoring>)`` zero-shot columns and ``zero-shot mean (<scoring>)``)."""
    tables = Path(results) / "tables"
    logs = pd.read_parquet(tables / "train_logs.parquet")
    zs = pd.read_parquet(tables / "zero_shot.parquet")
    keys = ["holdout", "model", "seed"]
    last = logs[logs["epoch"] == logs.groupby(keys)["epoch"].transform("max")]
    out = last.groupby(keys, as_index=False).agg(
        epochs=("epoch", "max"), train_accuracy=("accuracy", "mean"), train_min=("accuracy", "min"))
    for scoring in scorings(zs):
        part = zs if scoring is None else zs[zs["scoring"].astype(str) == scoring]
        suffix = "" if scoring is None else f" ({scoring})"
        wide = part.pivot_table(index=keys, columns="task", values="accuracy", observed=True)
        wide.columns = [f"{t}{suffix}" for t in wide.columns]
        wide[f"zero-shot mean{suffix}"] = wide.mean(axis=1)
        out = out.merge(wide.reset_index(), on=keys, how="left")
    order = {m: i for i, m in enumerate(order_models(out["model"].astype(str)))}
    out = out.sort_values(keys, key=lambda c: c.map(order) if c.name == "model" else c)
    return out.reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """Per-seed rows, then per-model means over seeds; accuracies in percent."""
    value_cols = [c for c in table.columns if c not in ("holdout", "model", "seed", "epochs")]
    means = table.groupby(["holdout", "model"], sort=False, as_index=False)[value_cols].mean()
    means.insert(2, "seed", "mean")
    means.insert(3, "epochs", "")
    rows = pd.concat([table.astype({"seed": str}), means], ignore_index=True)
    head = ["holdout", "model", "seed", "epochs"] + value_cols
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in rows.to_dict("records"):
        cells = [str(rec[c]) for c in head[:4]] + [
            "—" if pd.isna(rec[c]) else f"{100 * rec[c]:.1f}" for c in value_cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(headline(sys.argv[1] if len(sys.argv) > 1 else "results")))
