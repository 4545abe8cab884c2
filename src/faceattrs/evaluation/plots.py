"""Evaluation plots (matplotlib, PNG). Each function writes one file and returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def age_scatter(true: np.ndarray, pred: np.ndarray, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, pred, s=4, alpha=0.35)
    top = max(float(np.max(true)), float(np.max(pred)), 1.0)
    ax.plot([0, top], [0, top], "k--", lw=1, label="perfect")
    ax.set(xlabel="true age", ylabel="predicted age", title="Predicted vs true age")
    ax.legend()
    return _save(fig, path)


def error_histogram(true: np.ndarray, pred: np.ndarray, path: Path) -> Path:
    error = np.asarray(pred, float) - np.asarray(true, float)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(error, bins=np.arange(np.floor(error.min()) - 0.5, np.ceil(error.max()) + 1.5, 2))
    ax.axvline(0, color="k", lw=1)
    ax.set(xlabel="predicted − true age (years)", ylabel="faces", title="Age error")
    return _save(fig, path)


def mae_by_group_bar(groups: dict[str, dict[str, float]], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(groups)
    ax.bar(names, [groups[n]["mae"] for n in names])
    for i, n in enumerate(names):
        ax.text(i, groups[n]["mae"], f"n={groups[n]['n']}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="age MAE (years)", title=title)
    return _save(fig, path)


def confusion(matrix: list[list[int]], classes: tuple[str, ...], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    m = np.asarray(matrix, float)
    normalised = m / np.maximum(m.sum(1, keepdims=True), 1)
    ConfusionMatrixDisplay(normalised, display_labels=classes).plot(
        ax=ax, values_format=".2f", colorbar=False, cmap="Blues"
    )
    ax.set_title(f"{title} (rows: truth, share of row)")
    return _save(fig, path)


def training_curves(history: list[dict[str, float]], path: Path) -> Path:
    epochs = [row["epoch"] for row in history]
    val_keys = [k for k in history[0] if k.startswith("val_") or k == "percentile_distance"]
    fig, axes = plt.subplots(1, 1 + len(val_keys), figsize=(3.6 * (1 + len(val_keys)), 3.2))
    axes = np.atleast_1d(axes)
    axes[0].plot(epochs, [row["train_loss"] for row in history], marker="o")
    axes[0].set(title="train loss", xlabel="epoch")
    for ax, key in zip(axes[1:], val_keys, strict=True):
        ax.plot(epochs, [row.get(key, np.nan) for row in history], marker="o")
        ax.set(title=key, xlabel="epoch")
    return _save(fig, path)
