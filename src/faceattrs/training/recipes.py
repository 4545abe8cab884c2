"""Training recipes: a network, its input, its loss, its schedule and its stopping rule.

Every recipe runs through the same engine (:mod:`faceattrs.training.engine`).
A recipe is built by name, with optional overrides of its settings, so a run
folder's ``config.json`` is enough to rebuild it for evaluation or export.

>>> sorted(RECIPES)
['multitask', 'seed-age', 'seed-ethnicity']
>>> build_recipe("seed-age").batch_size
128
>>> build_recipe("multitask", image_size=96).input_size
96
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from faceattrs.calibration import age_median
from faceattrs.evaluation.metrics import Predictions
from faceattrs.models.seed import SEED_INPUT_SIZE, SeedAgeNet, SeedEthnicityNet
from faceattrs.training.augment import Augment
from faceattrs.training.early_stopping import PercentileStop, StoppingRule
from faceattrs.training.losses import age_interval_nll, age_loss, ldl_per_face


def unit_scale(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str  # "age", "ethnicity" or "multitask"
    input_size: int
    build_model: Callable[[], nn.Module]
    loss: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]
    to_predictions: Callable[[Any], Predictions]
    epochs: int
    batch_size: int
    lr: float
    make_stopping_rules: Callable[[], list[StoppingRule]] = field(default=list)
    #: float [0, 1] NCHW -> what the network takes
    normalize: Callable[[torch.Tensor], torch.Tensor] = _identity
    #: train-time augmentation on float [0, 1] NCHW batches
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None
    make_scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None
    #: average the predictions of each face and its mirror image
    tta_flip: bool = False
    #: the metric the patience rule watches by default
    monitor: str = "val_mae"
    #: keep an exponential moving average of the weights (per optimizer step) and ship it
    ema_decay: float | None = None
    #: mixup (Zhang et al., 2018): blend each batch with a shuffled copy, lambda ~ Beta(a, a); 0 = off
    mixup_alpha: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_input(self, images: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 NHWC at ``input_size`` -> the network's input (augmented when ``train``)."""
        x = unit_scale(images)
        if train and self.augment is not None:
            x = self.augment(x)
        return self.normalize(x)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.make_optimizer is not None:
            return self.make_optimizer(model)
        return torch.optim.Adam(model.parameters(), lr=self.lr)


# --- the course project's networks ------------------------------------------------------------


def _ethnicity_loss(logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(logits, targets["race"].long(), ignore_index=-1)


def _age_mse(age: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(age, targets["age"].float())


def seed_ethnicity() -> Recipe:
    return Recipe(
        name="seed-ethnicity",
        task="ethnicity",
        input_size=SEED_INPUT_SIZE,
        build_model=SeedEthnicityNet,
        loss=_ethnicity_loss,
        to_predictions=lambda logits: Predictions(ethnicity_proba=logits.softmax(1).numpy()),
        epochs=15,
        batch_size=64,
        lr=0.01,
        monitor="val_macro_f1",
    )


def seed_age() -> Recipe:
    return Recipe(
        name="seed-age",
        task="age",
        input_size=SEED_INPUT_SIZE,
        build_model=SeedAgeNet,
        loss=_age_mse,
        to_predictions=lambda age: Predictions(age=age.numpy()),
        epochs=36,
        batch_size=128,
        lr=0.01,
        make_stopping_rules=lambda: [PercentileStop(threshold=11.0)],
        monitor="val_mae",
    )


# --- the shipped multi-task network -----------------------------------------------------------


@dataclass(frozen=True)
class MultiTaskSettings:
    """Every knob of the multitask recipe. The defaults train on UTKFace alone; the shipped model's values are
    ``build.pipeline.BuildConfig().training`` (both data sets, 6 epochs)."""

    backbone: str = "lite1"  # "lite0": 16 blocks instead of 21, ~0.7x the compute; "lite2": wider, 24
    image_size: int = 128
    epochs: int = 16
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03
    ldl_sigma: float = 2.0
    label_smoothing: float = 0.1
    augment: bool = True
    mixup_alpha: float = 0.2
    tta_flip: bool = True
    channels_last: bool = True
    dropout: float = 0.2
    ema_decay: float | None = 0.998  # about 1.3 epochs of 270 steps
    pretrained: bool = True  # ImageNet weights (tests switch them off)
    #: train (and validate) on FairFace's faces too, beside UTKFace's
    fairface: bool = False
    #: how much a face labelled with an age group (FairFace) weighs in every term of the loss, against 1
    #: for a face with an exact age (UTKFace)
    group_label_weight: float = 1.0


def lite_normalize(x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """[0, 1] -> (255x - 127) / 128, the scaling the TF-converted EfficientNet-Lite weights expect."""
    x = (x * 255.0 - 127.0) / 128.0
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def multitask_predictions(out: dict[str, torch.Tensor]) -> Predictions:
    return Predictions(
        age=age_median(out["age"].numpy()),
        ethnicity_proba=out["ethnicity"].softmax(1).numpy(),
        gender_proba=out["gender"].softmax(1).numpy(),
        age_logits=out["age"].numpy(),
        ethnicity_logits=out["ethnicity"].numpy(),
        gender_logits=out["gender"].numpy(),
    )


def mixed_labels_loss(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor], s: MultiTaskSettings) -> torch.Tensor:
    """The multitask loss for a batch whose faces have exact ages (LDL) or age groups (the group's likelihood).

    Each face's three terms are weighted (1 for an exact age, ``group_label_weight`` for a group) and
    each term is averaged over the weights of the faces that have its label, so a batch of exact ages
    alone gives :func:`age_loss` plus the two cross-entropies, as the UTKFace-only recipe does.
    """
    exact = t["age_low"] == t["age_high"]
    weight = torch.where(exact, 1.0, s.group_label_weight)
    age_term = torch.where(
        exact,
        ldl_per_face(out["age"], t["age_low"].float(), s.ldl_sigma),
        age_interval_nll(out["age"], t["age_low"], t["age_high"]),
    )
    labelled = t["race"] >= 0
    ethnicity = F.cross_entropy(
        out["ethnicity"], t["race"], ignore_index=-1, label_smoothing=s.label_smoothing, reduction="none"
    )
    gender = F.cross_entropy(out["gender"], t["gender"], label_smoothing=s.label_smoothing, reduction="none")
    return (
        (weight * age_term).sum() / weight.sum()
        + (weight * ethnicity).sum() / (weight * labelled).sum().clamp(min=1e-8)
        + (weight * gender).sum() / weight.sum()
    )


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def multitask(**overrides: Any) -> Recipe:
    s = MultiTaskSettings(**overrides)
    from faceattrs.models.multitask import MultiTaskNet

    def build() -> nn.Module:
        model = MultiTaskNet(s.image_size, s.dropout, s.pretrained, s.backbone)
        return model.to(memory_format=torch.channels_last) if s.channels_last else model

    def loss(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
        if "age_low" not in t:  # exact ages only (UTKFace)
            return (
                age_loss(out["age"], t["age"], s.ldl_sigma)
                + F.cross_entropy(out["ethnicity"], t["race"], ignore_index=-1, label_smoothing=s.label_smoothing)
                + F.cross_entropy(out["gender"], t["gender"], label_smoothing=s.label_smoothing)
            )
        return mixed_labels_loss(out, t, s)

    def optimizer(model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)

    return Recipe(
        name="multitask",
        task="multitask",
        input_size=s.image_size,
        build_model=build,
        loss=loss,
        to_predictions=multitask_predictions,
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        normalize=lambda x: lite_normalize(x, s.channels_last),
        augment=Augment() if s.augment else None,
        make_optimizer=optimizer,
        make_scheduler=lambda opt, steps: warmup_cosine(opt, steps, s.warmup_fraction),
        tta_flip=s.tta_flip,
        monitor="val_mae",
        ema_decay=s.ema_decay,
        mixup_alpha=s.mixup_alpha,
        settings=asdict(s),
    )


RECIPES: dict[str, Callable[..., Recipe]] = {
    "seed-ethnicity": seed_ethnicity,
    "seed-age": seed_age,
    "multitask": multitask,
}


def build_recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe ``name`` with ``overrides`` of its settings (multitask only)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name](**overrides)
