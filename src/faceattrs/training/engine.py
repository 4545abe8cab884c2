"""The one training engine every recipe runs through.

Per epoch: shuffled mini-batches (seeded), a tqdm bar, validation metrics,
a row in ``history.csv``/``history.json``, a resumable checkpoint, then the
recipe's stopping rules. Weights are saved as safetensors.

With a recipe's ``ema_decay`` the engine keeps an exponential moving average
of the weights: validation, stopping rules and ``model.safetensors`` use the
average, and the raw weights' metrics are logged beside it as ``raw_val_*``.

Run folder layout::

    run/
      config.json        recipe, protocol, seed, epochs run, why it stopped, time
      model.safetensors  the final weights (best epoch when a rule restores it)
      history.csv/json   one row per epoch
      checkpoint/        last.safetensors, ema.safetensors, optimizer.safetensors, best.safetensors, state.json,
                         epochNN.safetensors (the shipped weights after each epoch)
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from faceattrs.data.cache import FaceArrays
from faceattrs.evaluation.metrics import Predictions, evaluate_predictions
from faceattrs.training.checkpoint import load_optimizer, load_weights, save_optimizer, save_weights
from faceattrs.training.early_stopping import PatienceStop, StoppingRule
from faceattrs.training.recipes import Recipe

PREDICTION_FIELDS = (
    "age",
    "ethnicity_proba",
    "gender_proba",
    "age_logits",
    "ethnicity_logits",
    "gender_logits",
)


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict[str, float]]
    epochs_run: int
    stopped_by: str | None
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _targets(faces: FaceArrays, index: np.ndarray) -> dict[str, torch.Tensor]:
    targets = {
        "age": torch.from_numpy(faces.age[index].astype(np.float32)),
        "gender": torch.from_numpy(faces.gender[index].astype(np.int64)),
        "race": torch.from_numpy(faces.race[index].astype(np.int64)),
    }
    if faces.age_low is not None:  # some faces are labelled with an age group
        low, high = faces.age_interval()
        targets |= {"age_low": torch.from_numpy(low[index].astype(np.int64)),
                    "age_high": torch.from_numpy(high[index].astype(np.int64))}  # fmt: skip
    return targets


def _average_outputs(a, b):
    if isinstance(a, dict):
        return {k: (a[k] + b[k]) / 2 for k in a}
    return (a + b) / 2


#: the batch that predicted fastest on 2 cores: 2.5x the faces/s of 256, the same outputs
#: (measured once, docs/history.md: a large batch's activations overflow the CPU caches)
PREDICT_BATCH_SIZE = 32


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    recipe: Recipe,
    faces: FaceArrays,
    batch_size: int = PREDICT_BATCH_SIZE,
    tta_flip: bool | None = None,
    progress: bool = False,
) -> Predictions:
    """Run ``model`` over ``faces`` (uint8 images at the recipe's size).

    With ``tta_flip`` (default: the recipe's setting) the raw outputs of each
    face and of its mirror image are averaged. The default batch (``PREDICT_BATCH_SIZE``) keeps the
    per-epoch validation cheap.
    """
    tta_flip = recipe.tta_flip if tta_flip is None else tta_flip
    model.eval()
    chunks = []
    starts = range(0, len(faces), batch_size)
    for start in tqdm(starts, desc="predict", unit="batch", disable=not progress, mininterval=_bar_interval()):
        images = torch.from_numpy(np.ascontiguousarray(faces.images[start : start + batch_size]))
        x = recipe.to_input(images)
        out = model(x)
        if tta_flip:
            out = _average_outputs(out, model(x.flip(3)))
        chunks.append(recipe.to_predictions(out))
    return Predictions(
        **{
            key: np.concatenate([getattr(c, key) for c in chunks])
            for key in PREDICTION_FIELDS
            if chunks and getattr(chunks[0], key) is not None
        }
    )


def validation_metrics(preds: Predictions, faces: FaceArrays) -> dict[str, float]:
    """The flat per-epoch numbers (``val_mae``, ``val_accuracy``, ``val_macro_f1``, ...).

    Faces with exact ages (UTKFace) give the ``val_*`` figures; faces labelled with an age group
    (FairFace) give their own, ``val_groups_*``, with the share of predicted ages inside the group.
    """
    exact = faces.exact_age
    out = _exact_age_metrics(preds.subset(exact), faces.subset(exact)) if exact.any() else {}
    if not exact.all():
        groups, group_faces = preds.subset(~exact), faces.subset(~exact)
        full = evaluate_predictions(groups, group_faces.age, group_faces.gender, group_faces.race)
        if groups.age is not None:
            low, high = group_faces.age_interval()
            out["val_groups_age_accuracy"] = float(((groups.age >= low) & (groups.age <= high)).mean())
        if "ethnicity" in full:
            out["val_groups_accuracy"] = full["ethnicity"]["accuracy"]
        if "gender" in full:
            out["val_groups_gender_accuracy"] = full["gender"]["accuracy"]
    return out


def _exact_age_metrics(preds: Predictions, faces: FaceArrays) -> dict[str, float]:
    full = evaluate_predictions(preds, faces.age, faces.gender, faces.race)
    out: dict[str, float] = {}
    if "age" in full:
        out |= {"val_mae": full["age"]["mae"], "val_rmse": full["age"]["rmse"], "val_cs5": full["age"]["cs5"]}
        # the course project's stopping statistic, logged for every age model so its effect can be studied
        out["val_percentile_distance"] = full["age"]["percentile_distance"]
    if "ethnicity" in full:
        out |= {"val_accuracy": full["ethnicity"]["accuracy"], "val_macro_f1": full["ethnicity"]["macro_f1"]}
    if "gender" in full:
        out["val_gender_accuracy"] = full["gender"]["accuracy"]
    return out


def _write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    if history:
        keys = list(dict.fromkeys(k for row in history for k in row))
        with (run_dir / "history.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(history)


def train(
    recipe: Recipe,
    train_faces: FaceArrays,
    val_faces: FaceArrays,
    run_dir: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    stopping_rules: list[StoppingRule] | None = None,
    resume: bool = False,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``recipe`` on ``train_faces``, validating on ``val_faces`` after every epoch."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    epochs = recipe.epochs if epochs is None else epochs
    rules = recipe.make_stopping_rules() if stopping_rules is None else stopping_rules

    seed_everything(seed)
    model = recipe.build_model()
    optimizer = recipe.optimizer(model)
    ema = None
    if recipe.ema_decay:
        # BatchNorm statistics are averaged too (use_buffers), so the average is usable as it is.
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
    shipped = model if ema is None else ema.module
    n = len(train_faces)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    scheduler = recipe.make_scheduler(optimizer, steps_per_epoch * epochs) if recipe.make_scheduler else None
    history: list[dict[str, float]] = []
    start_epoch, elapsed, stopped_by = 0, 0.0, None

    if resume and (ckpt / "state.json").exists():
        state = json.loads((ckpt / "state.json").read_text())
        load_weights(model, ckpt / "last.safetensors")
        load_optimizer(optimizer, ckpt / "optimizer.safetensors")
        if ema is not None:
            load_weights(ema, ckpt / "ema.safetensors")
        for rule, rule_state in zip(rules, state["rules"], strict=True):
            rule.load_state_dict(rule_state)
        history, start_epoch, elapsed = state["history"], state["epoch"] + 1, state["seconds"]
        stopped_by = state.get("stopped_by")
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        if scheduler is not None:
            scheduler.load_state_dict({"lr_lambdas": [None] * len(optimizer.param_groups), **state["scheduler"]})

    mixup = recipe.mixup_alpha > 0
    for epoch in range(start_epoch, epochs):
        if stopped_by:
            break
        t0 = time.perf_counter()
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(n)
        batches = [order[i : i + recipe.batch_size] for i in range(0, n, recipe.batch_size)]
        total, seen = 0.0, 0
        bar = tqdm(
            batches,
            desc=f"{recipe.name} {epoch + 1}/{epochs}",
            unit="batch",
            disable=not progress,
            mininterval=_bar_interval(),
        )
        for index in bar:
            index = np.sort(index)  # sorted reads are faster on a memmap
            images = torch.from_numpy(np.ascontiguousarray(train_faces.images[index]))
            x, targets = recipe.to_input(images, train=True), _targets(train_faces, index)
            loss = _mixup_loss(model, recipe, x, targets) if mixup else recipe.loss(model(x), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * len(index)
            seen += len(index)
            bar.set_postfix(loss=f"{total / seen:.4g}", refresh=False)
        preds = predict(shipped, recipe, val_faces)
        metrics = {"epoch": epoch + 1, "train_loss": total / max(seen, 1)}
        metrics |= validation_metrics(preds, val_faces)
        if ema is not None:
            raw = validation_metrics(predict(model, recipe, val_faces), val_faces)
            metrics |= {f"raw_{k}": v for k, v in raw.items()}
        stop = False
        for rule in rules:
            if rule.should_stop(epoch, metrics, preds.age, val_faces.age.astype(float)):
                stop, stopped_by = True, type(rule).__name__
            if rule.restores_best and rule.is_best():
                save_weights(shipped, ckpt / "best.safetensors")
        elapsed += time.perf_counter() - t0
        metrics["seconds"] = elapsed
        history.append(metrics)
        shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("val_", "raw_val_"))}
        tqdm.write(f"epoch {epoch + 1}: loss {metrics['train_loss']:.4g} {shown}")

        save_weights(model, ckpt / "last.safetensors")
        save_optimizer(optimizer, ckpt / "optimizer.safetensors")
        if ema is not None:
            save_weights(ema, ckpt / "ema.safetensors")
        # every epoch's shipped weights, so an epoch can be studied (or chosen on validation) afterwards
        save_weights(shipped, ckpt / f"epoch{epoch + 1:02d}.safetensors")
        state = {
            "epoch": epoch,
            "history": history,
            "seconds": elapsed,
            "rules": [r.state_dict() for r in rules],
            "stopped_by": stopped_by,
            "torch_rng": torch.get_rng_state().tolist(),
            "scheduler": _scheduler_state(scheduler),
        }
        (ckpt / "state.json").write_text(json.dumps(state))
        _write_history(run_dir, history)
        if stop:
            break

    best_epoch = None
    for rule in rules:
        if rule.restores_best and (ckpt / "best.safetensors").exists():
            load_weights(shipped, ckpt / "best.safetensors")
            best_epoch = (rule.best_epoch or 0) + 1
    save_weights(shipped, run_dir / "model.safetensors")
    config = {
        "recipe": recipe.name,
        "settings": recipe.settings,
        "seed": seed,
        "epochs_max": epochs,
        "epochs_run": len(history),
        "stopped_by": stopped_by,
        "restored_epoch": best_epoch,
        "train_seconds": elapsed,
        "n_train": len(train_faces),
        "n_val": len(val_faces),
        **(extra_config or {}),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    _write_history(run_dir, history)
    return TrainResult(shipped, history, len(history), stopped_by, elapsed, config)


def _bar_interval() -> float:
    return 0.5 if sys.stderr.isatty() else 60  # keep logs of background runs short


def _mixup_loss(model: torch.nn.Module, recipe: Recipe, x: torch.Tensor, targets: dict[str, torch.Tensor]):
    """Mixup: one lambda per batch; the loss is the same blend of the two faces' losses."""
    # torch's generator, whose state the checkpoint keeps, so a resumed run draws the same lambdas
    a = torch.tensor(recipe.mixup_alpha)
    lam = float(torch.distributions.Beta(a, a).sample())
    perm = torch.randperm(x.shape[0])
    mixed = lam * x + (1 - lam) * x[perm]  # keeps x's memory format (channels_last stays)
    out = model(mixed)
    shuffled = {k: v[perm] for k, v in targets.items()}
    return lam * recipe.loss(out, targets) + (1 - lam) * recipe.loss(out, shuffled)


def _scheduler_state(scheduler) -> dict[str, Any] | None:
    if scheduler is None:
        return None
    # LambdaLR keeps its lambdas out of the state (they are rebuilt from the recipe).
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def patience_rule(recipe: Recipe, patience: int) -> PatienceStop:
    """Patience on the recipe's monitored metric (MAE for age, macro-F1 for classes)."""
    mode = "min" if recipe.monitor.endswith(("mae", "rmse", "loss")) else "max"
    return PatienceStop(recipe.monitor, mode=mode, patience=patience)
