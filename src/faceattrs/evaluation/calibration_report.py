"""How well calibrated outputs hold up: ECE before/after temperature scaling and
age-range coverage and width, overall and per ethnicity, gender and age bucket.

>>> import numpy as np
>>> rows = interval_coverage(np.array([10, 20, 30]), np.array([8, 19, 35]), np.array([12, 25, 40]),
...                          {"all": np.array(["a", "a", "a"])})
>>> rows["all"]["a"]["coverage"], rows["all"]["a"]["mean_width"]
(0.6666666666666666, 5.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def interval_coverage(
    age: np.ndarray, low: np.ndarray, high: np.ndarray, groupings: dict[str, np.ndarray]
) -> dict[str, dict[str, dict[str, float]]]:
    """Coverage and mean width of ``[low, high]`` for every group of every grouping."""
    inside = (age >= low) & (age <= high)
    width = high - low
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, groups in groupings.items():
        out[name] = {}
        for g in dict.fromkeys(groups.tolist()):
            mask = groups == g
            out[name][str(g)] = {
                "n": int(mask.sum()),
                "coverage": float(inside[mask].mean()),
                "mean_width": float(width[mask].mean()),
            }
    return out


def coverage_markdown(coverage: dict[str, Any]) -> str:
    lines = ["| grouping | group | n | coverage | mean width (years) |", "|---|---|---|---|---|"]
    for grouping, groups in coverage.items():
        for g, row in groups.items():
            lines.append(f"| {grouping} | {g} | {row['n']} | {100 * row['coverage']:.1f}% | {row['mean_width']:.1f} |")
    return "\n".join(lines) + "\n"
