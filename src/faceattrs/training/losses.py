"""Losses of the multi-task network.

Age is a distribution over the integer ages 0..116, learnt by label-distribution learning: the KL
divergence to a Gaussian around the true age (sigma ``ldl_sigma``) plus an L1 loss on the expected
age (Gao et al., DLDL-v2). It beat plain cross-entropy and the mean-variance loss on validation
(docs/history.md). A face labelled with an age *group* (FairFace) is learnt from the likelihood of its
interval: minus the log of the probability mass the distribution puts inside the group
(:func:`age_interval_nll`).

>>> import torch
>>> logits = torch.zeros(2, 117)
>>> age_loss(logits, torch.tensor([20.0, 40.0])).item() > 0
True
"""

from __future__ import annotations

import math  # noqa: F401  (the doctest)

import torch
from torch.nn import functional as F


def age_values(n_ages: int, device=None) -> torch.Tensor:
    return torch.arange(n_ages, dtype=torch.float32, device=device)


def gaussian_targets(age: torch.Tensor, n_ages: int, sigma: float) -> torch.Tensor:
    """Soft labels: a normalised Gaussian over the age bins around each true age."""
    bins = age_values(n_ages, age.device)
    weights = torch.exp(-0.5 * ((bins[None, :] - age[:, None]) / sigma) ** 2)
    return weights / weights.sum(1, keepdim=True)


def age_loss(logits: torch.Tensor, age: torch.Tensor, ldl_sigma: float = 2.0, l1_weight: float = 0.1) -> torch.Tensor:
    """KL divergence to a Gaussian around each true age, plus ``l1_weight`` times the expected age's L1 error."""
    log_p = F.log_softmax(logits, 1)
    expected = (log_p.exp() * age_values(logits.shape[1], logits.device)).sum(1)
    target = gaussian_targets(age, logits.shape[1], ldl_sigma)
    return F.kl_div(log_p, target, reduction="batchmean") + l1_weight * (expected - age).abs().mean()


def age_interval_nll(logits: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Per face, ``-log P(low <= age <= high)`` under ``softmax(logits)`` (both ends included).

    >>> logits = torch.zeros(1, 117)  # uniform over 117 ages: a 10-year group holds 10/117
    >>> round(float(age_interval_nll(logits, torch.tensor([20]), torch.tensor([29]))[0]), 4), round(math.log(11.7), 4)
    (2.4596, 2.4596)
    """
    ages = age_values(logits.shape[1], logits.device)
    inside = (ages[None, :] >= low[:, None]) & (ages[None, :] <= high[:, None])
    return torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~inside, float("-inf")), 1)


def ldl_per_face(logits: torch.Tensor, age: torch.Tensor, ldl_sigma: float = 2.0, l1_weight: float = 0.1):
    """:func:`age_loss` face by face (its mean over faces is ``age_loss``), for batches that mix label kinds."""
    log_p = F.log_softmax(logits, 1)
    expected = (log_p.exp() * age_values(logits.shape[1], logits.device)).sum(1)
    target = gaussian_targets(age, logits.shape[1], ldl_sigma)
    kl = F.kl_div(log_p, target, reduction="none").sum(1)
    return kl + l1_weight * (expected - age).abs()


def child_weighted_gender_loss(
    logits: torch.Tensor,
    gender: torch.Tensor,
    age: torch.Tensor,
    child_weight: float,
    child_age: int = 12,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """Cross-entropy on the gender labels in which faces aged ``child_age`` or less weigh ``child_weight``.

    Children's gender is where the networks fall short (about 77% right for ages 0-12 against 97%
    older), so this lets a training step weigh it more. The mean is over faces, not weights:
    a batch with children has a larger gender term.

    >>> logits = torch.zeros(2, 2)
    >>> round(float(child_weighted_gender_loss(logits, torch.tensor([0, 1]), torch.tensor([5, 40]), 4.0)), 4)
    1.7329
    """
    weight = torch.where(age <= child_age, child_weight, 1.0)
    loss = F.cross_entropy(logits, gender, label_smoothing=label_smoothing, reduction="none")
    return (weight * loss).mean()
