"""The ``vqsim bench`` text table: the machine line and every section's summary, aligned."""
from __future__ import annotations

import math
from typing import Any


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.4g}" if a < 10 else f"{v:.2f}"
    return f"{v:.3g}"


def format_table(result: dict[str, Any]) -> str:
    """The machine line and every section's summary as an aligned text table."""
    m = result["machine"]
    lines = [f"vqsim bench — {m['date']} — {m['cpu_model']} ({m['cpu_cores']} cores, load {m['load_avg_1min']:.2f}), "
             f"torch {m['torch']} ({m['torch_threads']} threads), device {m['device']}"
             + (f" [{m['gpu']}]" if m.get("gpu") else "")]
    rows: list[tuple[str, str, str]] = []
    for name, res in result["sections"].items():
        if "error" in res:
            rows.append((name, "ERROR", res["error"]))
            continue
        for key, v in res.get("summary", {}).items():
            rows.append((name, key, _fmt(v)))
        rows.append((name, "(section time s)", _fmt(res["elapsed_s"])))
    w0 = max([len(r[0]) for r in rows] + [7])
    w1 = max([len(r[1]) for r in rows] + [6])
    lines.append(f"{'section':<{w0}}  {'metric':<{w1}}  value")
    lines.append(f"{'-' * w0}  {'-' * w1}  {'-' * 12}")
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.append(f"total {result['total_s']:.1f} s")
    return "\n".join(lines)
