"""Where a training epoch of the shipped recipe spends its time: training steps against validation.

`faceattrs train` validates after every epoch: the weight average (EMA) and the raw weights, each
over the 2,090 validation faces with flip test-time augmentation, i.e. four forward passes per face.
This measures, for the multitask recipe (Lite1, 128 px, channels_last):

* one training step (batch 64: augmentation, mixup, forward, backward, AdamW, EMA update), with
  glibc keeping freed memory as `faceattrs train` has it (``training.memory``);
* one validation pass (``engine.predict`` with flip TTA over ``--faces`` random faces) at each
  prediction batch size in ``--batch-sizes``: a convolution network's CPU throughput depends on the
  batch size through cache reuse, so the size that predicts fastest is measured, not assumed;

and projects the epoch: ``ceil(17,224 / 64)`` steps plus two validation passes of 2,090 faces.
Batch sizes alternate round by round in one process so machine noise hits them alike. No pretrained
weights or data are needed (speed does not depend on them). Per-face predictions of every batch
size are compared with the first's (the largest difference is printed; eval mode has no batch
dependence, only float rounding).

Usage::

    python benchmarks/epoch_time.py [--batch-sizes 256 64 32 16] [--steps 8] [--rounds 3]

Writes ``benchmarks/results/epoch_time.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from faceattrs.data.cache import FaceArrays
from faceattrs.training.engine import _mixup_loss, _targets, predict
from faceattrs.training.memory import keep_freed_memory
from faceattrs.training.recipes import build_recipe
from results_io import save_results

N_TRAIN, N_VAL = 17_224, 2_090  # the project split's train and validation faces


def random_faces(n: int, size: int, seed: int = 0) -> FaceArrays:
    rng = np.random.default_rng(seed)
    return FaceArrays(
        names=np.array([f"face{i}" for i in range(n)]),
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        age=rng.integers(1, 90, n).astype(np.int16),
        gender=rng.integers(0, 2, n).astype(np.int8),
        race=rng.integers(0, 5, n).astype(np.int8),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 64, 32, 16])
    parser.add_argument("--faces", type=int, default=512, help="faces per timed validation pass")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    keep_freed_memory()
    recipe = build_recipe("multitask", pretrained=False)
    model = recipe.build_model()
    optimizer = recipe.optimizer(model)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
    faces = random_faces(recipe.batch_size, recipe.input_size)
    val = random_faces(args.faces, recipe.input_size, seed=1)
    index = np.arange(recipe.batch_size)

    def train_step() -> float:
        model.train()
        start = time.perf_counter()
        x = recipe.to_input(torch.from_numpy(faces.images[index]), train=True)
        loss = _mixup_loss(model, recipe, x, _targets(faces, index))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update_parameters(model)
        return time.perf_counter() - start

    train_step()  # warm-up
    steps: list[float] = []
    passes: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    outputs: dict[int, np.ndarray] = {}
    for round_ in range(args.rounds):
        steps += [train_step() for _ in range(args.steps)]
        for batch in args.batch_sizes:
            start = time.perf_counter()
            outputs[batch] = predict(model, recipe, val, batch_size=batch).age_logits
            passes[batch].append((time.perf_counter() - start) / args.faces)  # seconds per face
        print(f"round {round_ + 1} done", flush=True)

    step = statistics.median(steps)
    steps_per_epoch = math.ceil(N_TRAIN / recipe.batch_size)
    first = outputs[args.batch_sizes[0]]
    rows = []
    for batch, per_face in passes.items():
        val_pass = statistics.median(per_face) * N_VAL
        rows.append(
            {
                "batch_size": batch,
                "faces_per_s": 1 / statistics.median(per_face),
                "val_pass_s": val_pass,
                "epoch_s": steps_per_epoch * step + 2 * val_pass,
                "validation_share": 2 * val_pass / (steps_per_epoch * step + 2 * val_pass),
                "max_abs_logit_difference": float(np.abs(outputs[batch] - first).max()),
            }
        )
    cpu = platform.processor() or platform.machine()
    result = {
        "machine": f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "train_step_s": step,
        "steps_per_epoch": steps_per_epoch,
        "epochs": recipe.epochs,
        "rows": rows,
    }
    lines = [
        "| prediction batch | faces/s (flip TTA) | validation pass (2,090 faces) | epoch | validation share | "
        f"{recipe.epochs} epochs | largest logit difference |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['batch_size']} | {r['faces_per_s']:.0f} | {r['val_pass_s']:.0f} s | {r['epoch_s'] / 60:.1f} min | "
            f"{100 * r['validation_share']:.0f}% | {recipe.epochs * r['epoch_s'] / 60:.0f} min | "
            f"{r['max_abs_logit_difference']:.1e} |"
            for r in rows
        ],
        "",
        f"Multitask recipe (Lite1, {recipe.input_size} px, channels_last), {result['machine']}: a training step "
        f"(batch {recipe.batch_size}, mixup) took {step:.2f} s (median of {len(steps)}), so {steps_per_epoch} steps "
        f"take {steps_per_epoch * step / 60:.1f} min; an epoch adds two validation passes (EMA and raw weights). "
        f"{args.rounds} alternating rounds; validation timed on {args.faces} random faces and scaled to {N_VAL}.",
    ]
    save_results("epoch_time", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
