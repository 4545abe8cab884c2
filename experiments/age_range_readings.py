"""How often a model's 90% age range holds the truth on both validation parts, read four ways, for two fitting rules.

The shipped rule (``build.export.fit_age_range``, version 21) fits the range's level on each kind of label on its
own and keeps the wider; version 20 pooled UTKFace's exact ages and FairFace's age groups into one fit. For each
rule's level, on the validation faces fed to the model directly:

* UTKFace: the share of exact ages inside the range, and the two readings a group label allows, on the same faces
  regrouped into FairFace's nine groups: the range overlaps the group, and the share of the group's ages inside the
  range (as if the true age were uniform in the group; the open group 70+ read as 70-89);
* FairFace: the same two group readings.

On UTKFace the exact ages sit between the two group readings (the overlap reads high, the uniform share low), so on
FairFace the two readings bound what its true ages would show. Run once in session 28 (docs/history.md)::

    python experiments/age_range_readings.py [MODEL_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceattrs.build.descriptor_heads import AGE_GROUP_STARTS, age_group
from faceattrs.build.export import fit_age_range, onnx_predictions
from faceattrs.calibration import QuantileAgeInterval
from faceattrs.data.folders import FAIRFACE_DIR
from faceattrs.inference.attribute_model import AttributeModel
from faceattrs.training.protocols import project_parts

OPEN_GROUP_TOP = 89  # the last age counted in FairFace's open group "more than 70" for the uniform reading


def readings(bounds: tuple[np.ndarray, np.ndarray], low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """(share of ranges overlapping the label, mean share of the label's ages inside the range)."""
    b0, b1 = bounds
    top = np.minimum(high, OPEN_GROUP_TOP)
    overlap = (b1 >= low) & (b0 <= high)
    inside = np.clip(np.minimum(b1, top) - np.maximum(b0, low) + 1, 0, None) / (top - low + 1)
    return float(overlap.mean()), float(inside.mean())


def main(model_dir: Path) -> None:
    model = AttributeModel(model_dir)
    val = project_parts(model.input_size, fairface=FAIRFACE_DIR)["val"]
    logits = onnx_predictions(model, val.images)[0]["age_logits"]
    low, high = val.age_interval()
    exact = low == high
    starts = np.array((*AGE_GROUP_STARTS, 117))
    group = age_group(low[exact])
    utk_low, utk_high = starts[group], starts[group + 1] - 1  # the last start is 117: 70+ ends at 116
    levels = {
        "pooled (version 20)": QuantileAgeInterval.fit(logits, low, coverage=0.9, age_high=high).level,
        "each kind on its own (version 21)": fit_age_range(logits, val, 0.9).level,
    }
    print(
        "| rule | level | UTKFace: exact ages inside | its groups overlapped | its groups' ages inside (uniform) "
        "| FairFace: groups overlapped | groups' ages inside (uniform) | mean width UTKFace / FairFace |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rule, level in levels.items():
        b0, b1 = QuantileAgeInterval(0.9, level).bounds_for(logits)
        held = float(((low >= b0) & (low <= b1))[exact].mean())
        utk = readings((b0[exact], b1[exact]), utk_low, utk_high)
        fairface = readings((b0[~exact], b1[~exact]), low[~exact], high[~exact])
        widths = f"{(b1 - b0)[exact].mean():.1f} / {(b1 - b0)[~exact].mean():.1f}"
        cells = [f"{100 * x:.1f}%" for x in (held, *utk, *fairface)]
        print(f"| {rule} | {level:.3f} | {' | '.join(cells)} | {widths} |")
    print(f"\n{exact.sum()} UTKFace and {(~exact).sum()} FairFace validation faces; model {model_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "src/faceattrs/assets")
