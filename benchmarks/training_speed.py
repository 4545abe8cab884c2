"""Training throughput of the multitask recipe per backbone and numeric mode, on this machine's CPU.

The 2-hour training budget decides which backbone and schedule fit, so ways to make a
training step cheaper are measured here rather than guessed:

* ``fp32``: the shipped recipe (float32, channels_last) as `faceattrs train` runs it, with glibc
  told to keep freed memory (``training.memory.keep_freed_memory``);
* ``fp32-glibc``: the same with glibc's default ``malloc`` settings, which hand each step's
  activations back to the kernel (the page faults per step are counted for both);
* ``bf16``: the recipe's ``precision=bf16`` setting: the forward pass under
  ``torch.autocast("cpu", torch.bfloat16)`` (weights, optimizer and loss stay float32), which
  pays off only where the CPU and oneDNN run bf16 convolutions fast;
* ``compile`` (with ``--compile``): ``torch.compile`` of the network (inductor, C++ kernels).

Each configuration trains the real recipe (augmentation, mixup, loss, AdamW) on random 128 px batches
of 64 with random labels for ``--steps`` steps after warm-up steps, in its own process;
configurations alternate round by round so machine noise hits them alike. Reported: median seconds per
step and images/s. No pretrained weights are needed (speed does not depend on them).

Usage::

    python benchmarks/training_speed.py [--backbones lite1 lite2] [--steps 6] [--rounds 2] [--compile]

Writes ``benchmarks/results/training_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from faceattrs.training.engine import _mixup_loss, training_forward
from faceattrs.training.memory import keep_freed_memory
from faceattrs.training.recipes import build_recipe
from results_io import save_results


class Trainer:
    """One configuration's model, optimizer and step function."""

    def __init__(self, backbone: str, mode: str, batch: int, size: int) -> None:
        if mode != "fp32-glibc":
            keep_freed_memory()
        precision = "bf16" if mode == "bf16" else "fp32"
        self.recipe = build_recipe(
            "multitask", backbone=backbone, pretrained=False, image_size=size, precision=precision
        )
        self.model = self.recipe.build_model().train()
        self.optimizer = self.recipe.optimizer(self.model)
        self.forward = torch.compile(self.model) if mode == "compile" else self.model
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator)
        self.targets = {
            "age": torch.randint(1, 90, (batch,), generator=generator).float(),
            "gender": torch.randint(0, 2, (batch,), generator=generator),
            "race": torch.randint(0, 5, (batch,), generator=generator),
        }

    def step(self) -> float:
        start = time.perf_counter()
        x = self.recipe.to_input(self.images, train=True)
        if self.recipe.mixup_alpha > 0:  # the engine's own step (the shipped recipe mixes up)
            loss = _mixup_loss(self.forward, self.recipe, x, self.targets)
        else:
            loss = self.recipe.loss(training_forward(self.forward, self.recipe, x), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


def _time_one(backbone: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per step and page faults per step of one configuration, in a fresh process (see ``main``)."""
    command = [sys.executable, __file__, "--one", backbone, mode, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--size", str(args.size)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["lite1", "lite2"])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation happens here)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    parser.add_argument("--one", nargs=2, metavar=("BACKBONE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: time one configuration, print its step times
        trainer = Trainer(*args.one, args.batch, args.size)
        for _ in range(args.warmup):
            trainer.step()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        steps = [trainer.step() for _ in range(args.steps)]
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
        print(json.dumps({"steps": steps, "faults": faults}))
        return
    modes = ["fp32", "fp32-glibc", "bf16"] + (["compile"] if args.compile else [])
    # One process per configuration and round: several models in one process slowed each other's
    # steps (up to 1.6x, unevenly), so they are kept apart and alternated round by round instead.
    times: dict[tuple[str, str], list[float]] = {(b, m): [] for b in args.backbones for m in modes}
    faults: dict[tuple[str, str], list[float]] = {key: [] for key in times}
    for round_ in range(args.rounds):
        for key in times:
            one = _time_one(*key, args)
            times[key] += one["steps"]
            faults[key].append(one["faults"])
            print(f"round {round_ + 1}: {key} done", flush=True)
    rows = []
    for (backbone, mode), ts in times.items():
        median = statistics.median(ts)
        base = statistics.median(times[(backbone, "fp32")])
        rows.append(
            {
                "backbone": backbone,
                "mode": mode,
                "median_step_s": median,
                "images_per_s": args.batch / median,
                "speed_vs_fp32": base / median,
                "page_faults_per_step": statistics.median(faults[(backbone, mode)]),
                "steps": len(ts),
            }
        )
    cpu = platform.processor() or platform.machine()
    result = {
        "machine": f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "batch": args.batch,
        "image_size": args.size,
        "rows": rows,
    }
    lines = [
        "| backbone | mode | s per step (median) | images/s | speed vs fp32 | page faults per step |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['backbone']} | {r['mode']} | {r['median_step_s']:.2f} | {r['images_per_s']:.1f} | "
            f"{r['speed_vs_fp32']:.2f}× | {r['page_faults_per_step']:,.0f} |"
            for r in rows
        ],
        "",
        f"Training steps of the multitask recipe (augmentation, mixup, loss, AdamW), batch {args.batch} at "
        f"{args.size} px, channels_last; {result['machine']}; {args.rounds} alternating rounds of "
        f"{args.steps} steps after {args.warmup} warm-up steps, each configuration in its own process.",
    ]
    md = "\n".join(lines) + "\n"
    save_results("training_speed", result, md)


if __name__ == "__main__":
    main()
