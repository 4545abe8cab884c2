"""Short-budget training ablations of the multitask recipe: age loss and augmentation.

Each variant changes one setting of a base recipe and trains from the same
ImageNet weights, seed and data order on a fixed random subset of the train
part, at a reduced resolution and epoch count so that all variants fit in
minutes on 2 cores; every variant is scored on the whole validation part
(never the test part). A short budget favours settings that learn fast, so
read the table as "which way does it point", not as the full-budget effect.

Usage::

    python benchmarks/recipe_ablations.py [--size 112] [--epochs 3] [--train-subset 5000] [--variants ...]

Writes ``benchmarks/results/recipe_ablations.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from faceattrs.data.cache import load_faces
from faceattrs.training.engine import predict, train
from faceattrs.training.protocols import project_protocol
from faceattrs.training.recipes import build_recipe
from multitask_ablations import SCORE_HEADER, score_cells, scores  # the sibling script: the same figures
from results_io import save_results

DATA = Path("../shared/datasets/utkface/UTKFace")
#: The base these ablations were measured on: the second shipped recipe (Lite0, no mixup, weight decay
#: 1e-4); the third adds mixup and weight decay 0.05, whose full-budget effect multitask_ablations.py shows.
BASE: dict[str, object] = {"backbone": "lite0", "mixup_alpha": 0.0, "weight_decay": 1e-4, "low_res_epochs": 0}
VARIANTS: dict[str, dict[str, object]] = {
    "base (LDL + L1 age loss, augmentation on, no mixup)": {},
    "age loss: cross-entropy over age bins": {"age_loss": "ce"},
    "age loss: mean-variance": {"age_loss": "mv"},
    "augmentation off": {"augment": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=5000)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="names from VARIANTS")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablations"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    parts = project_protocol(load_faces(DATA, args.size, progress=False))
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(len(parts["train"]), size=min(args.train_subset, len(parts["train"])), replace=False))
    train_faces, val = parts["train"].subset(subset), parts["val"]
    rows = {}
    for i, name in enumerate(args.variants):
        # EMA is left out: over a few hundred steps the average mostly lags the weights
        settings = BASE | VARIANTS[name]
        recipe = build_recipe("multitask", image_size=args.size, epochs=args.epochs, ema_decay=None, **settings)
        start = time.perf_counter()
        result = train(recipe, train_faces, val, args.runs / f"variant_{i}", stopping_rules=[], progress=False)
        rows[name] = scores(predict(result.model, recipe, val), val) | {"minutes": (time.perf_counter() - start) / 60}
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
    setup = {"image_size": args.size, "epochs": args.epochs, "train_faces": len(train_faces), "val_faces": len(val)}
    lines = [
        f"| variant (validation part) | {SCORE_HEADER} | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {score_cells(r)} | {r['minutes']:.1f} |" for name, r in rows.items()]
    lines.append(
        f"\nShort budget: {args.epochs} epochs at {args.size} px on {len(train_faces):,} random train faces "
        f"(seed 0), no EMA; flip TTA on; scored on all {len(val):,} validation faces."
    )
    md = "\n".join(lines) + "\n"
    save_results("recipe_ablations", {"setup": setup, "variants": rows}, md)


if __name__ == "__main__":
    main()
