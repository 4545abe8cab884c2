"""Fine-tune dlib's face-recognition network on the train part's ethnicity and gender labels.

The shipped model's second network reads ethnicity and gender from dlib's 128-d face descriptors
(:mod:`faceattrs.build.descriptor_heads`). Frozen, those descriptors were trained to tell 7,485
people apart and carry ethnicity and gender only as far as that needs. Fine-tuned on the labels
(the whole network, a few epochs, linear heads on the standardised descriptors), the same network
at the same inference cost reads them better; the heads that ship are still fitted afterwards by
``add-descriptor-heads`` (logistic regression), on the fine-tuned descriptors: on validation that
read-out blended at least as well as the heads trained with the network (docs/history.md, the fifteenth model).

Training sees exactly what serving feeds the network: the model's own input crops (the cached
``to_model_input`` arrays), upscaled to 150 px by :class:`FaceDescriptor`, with the first
network's augmentation (:class:`~faceattrs.training.augment.Augment`). Batch norm stays folded
into the convolutions (dlib's network has no separate statistics to update). No validation face
is seen: the number of epochs is fixed by the config, not picked on validation.

The weights are written with safetensors (never a pickle), the config and the XML's sha256 in its
header::

    faceattrs finetune-descriptors --net runs/dlib_net.xml --out runs/dlib_finetuned.safetensors
    faceattrs add-descriptor-heads --net runs/dlib_net.xml --finetuned runs/dlib_finetuned.safetensors ...

>>> DescriptorFinetuneConfig().epochs
5
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceattrs.data.cache import FaceArrays
from faceattrs.model_folder import sha256_of
from faceattrs.models.dlib_resnet import DlibResNet, FaceDescriptor, read_layers
from faceattrs.training.augment import Augment
from faceattrs.training.losses import child_weighted_gender_loss


@dataclass(frozen=True)
class DescriptorFinetuneConfig:
    """How the descriptor network is fine-tuned (the defaults are the shipped model's)."""

    epochs: int = 5
    lr: float = 1e-4  # peak of the one-cycle schedule for the network; the heads get 10x
    batch_size: int = 64
    weight_decay: float = 1e-4
    seed: int = 0
    child_gender_weight: float = 1.0  # weight of a face aged 12 or less in the gender loss (1: plain cross-entropy)


class DescriptorClassifier(nn.Module):
    """uint8 NHWC faces -> ethnicity and gender logits from the descriptors of a trainable dlib network."""

    def __init__(self, net: DlibResNet, width: int) -> None:
        super().__init__()
        self.descriptor = FaceDescriptor(net)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.ethnicity = nn.Linear(width, 5)
        self.gender = nn.Linear(width, 2)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = (self.descriptor(images) - self.mean) / self.scale
        return self.ethnicity(d), self.gender(d)


def _augmented(images: np.ndarray, augment: Augment) -> torch.Tensor:
    """uint8 NHWC faces -> augmented float NHWC in 0..255 (FaceDescriptor's input range)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return (augment(x) * 255).permute(0, 2, 3, 1)


def finetune(net_xml: Path, train: FaceArrays, config: DescriptorFinetuneConfig) -> DescriptorClassifier:
    """The network of ``net_xml`` fine-tuned on ``train``'s ethnicity and gender labels.

    Faces without a race label add only their gender loss; ``config.child_gender_weight`` weighs
    the gender loss of children (:func:`~faceattrs.training.losses.child_weighted_gender_loss`). The descriptors are
    standardised with statistics of 512 train faces through the pretrained network, so the new
    heads start on unit-scale inputs.
    """
    from tqdm import tqdm

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = DlibResNet(read_layers(net_xml), trainable=True)
    with torch.no_grad():
        sample = np.sort(rng.choice(len(train), min(512, len(train)), replace=False))
        chunks = [torch.from_numpy(train.images[sample[i : i + 64]]) for i in range(0, len(sample), 64)]
        d = torch.cat([FaceDescriptor(net)(chunk) for chunk in chunks])
        model = DescriptorClassifier(net, width=d.shape[1])
        model.mean.copy_(d.mean(0))
        model.scale.copy_(d.std(0) + 1e-6 if len(d) > 1 else torch.ones(d.shape[1]))
    # channels_last: 96 against 63 faces/s for the training step on the 2 cores (session 18)
    model = model.to(memory_format=torch.channels_last)

    heads = [p for name, p in model.named_parameters() if not name.startswith("descriptor.")]
    optimiser = torch.optim.AdamW(
        [{"params": net.parameters(), "lr": config.lr}, {"params": heads, "lr": config.lr * 10}],
        weight_decay=config.weight_decay,
    )
    batches = max(1, len(train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=[config.lr, config.lr * 10],
        total_steps=config.epochs * batches,
        pct_start=max(0.1, 2 / (config.epochs * batches)),
    )
    race = torch.from_numpy(train.race.astype(np.int64))
    gender = torch.from_numpy(train.gender.astype(np.int64))
    age = torch.from_numpy(train.age.astype(np.int64))
    augment = Augment()
    model.train()
    for epoch in range(config.epochs):
        order = rng.permutation(len(train))
        progress = tqdm(range(batches), desc=f"fine-tune {epoch + 1}/{config.epochs}", leave=False)
        for b in progress:
            rows = np.sort(order[b * config.batch_size : (b + 1) * config.batch_size])
            ethnicity_logits, gender_logits = model(_augmented(train.images[rows], augment))
            loss = child_weighted_gender_loss(
                gender_logits, gender[rows], age[rows], config.child_gender_weight, label_smoothing=0.0
            )
            if (race[rows] >= 0).any():
                loss = loss + F.cross_entropy(ethnicity_logits, race[rows], ignore_index=-1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


class FinetunedMismatch(ValueError):
    """Fine-tuned weights that do not belong to the given network dump or input size."""


def save_finetuned(
    model: DescriptorClassifier, path: Path, config: DescriptorFinetuneConfig, net_xml: Path, input_size: int
) -> str:
    """Write the fine-tuned weights (network and heads) as safetensors; returns the file's sha256.

    ``input_size`` is the size of the faces it was trained on (the first network's input).
    """
    from safetensors.torch import save_file

    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    header = {
        "config": json.dumps(asdict(config)),
        "base_network_sha256": sha256_of(net_xml),
        "input_size": str(input_size),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=header)
    return sha256_of(path)


def load_finetuned_network(net_xml: Path, weights: Path, input_size: int | None = None) -> tuple[DlibResNet, dict]:
    """dlib's network of ``net_xml`` with the fine-tuned weights of ``weights``, and the file's header.

    Raises :class:`FinetunedMismatch` if ``weights`` was fine-tuned from another network dump, does
    not fit this one, or (given ``input_size``) was fine-tuned on faces of another size. The header
    holds ``config`` (JSON), ``input_size`` and ``sha256``.
    """
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        header = dict(f.metadata() or {})
        prefix = "descriptor.net."
        names = [k for k in f.keys() if k.startswith(prefix)]  # noqa: SIM118 (safe_open is not iterable)
        state = {k[len(prefix) :]: f.get_tensor(k) for k in names}
    if header.get("base_network_sha256") != sha256_of(net_xml):
        raise FinetunedMismatch(f"{weights} was not fine-tuned from {net_xml} (base network sha256 differs)")
    if input_size is not None and int(header["input_size"]) != input_size:
        trained_on = header["input_size"]
        raise FinetunedMismatch(f"{weights} was fine-tuned on {trained_on} px faces; the model reads {input_size} px")
    net = DlibResNet(read_layers(net_xml))
    try:
        net.load_state_dict(state)  # strict: every weight present, shapes checked
    except RuntimeError as e:
        raise FinetunedMismatch(f"{weights} does not fit the network of {net_xml}: {str(e).splitlines()[0]}") from None
    header["sha256"] = sha256_of(weights)
    return net.eval(), header
