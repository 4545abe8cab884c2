import pytest
import torch

from faceattrs.training.recipes import MultiTaskSettings, build_recipe


def test_the_multitask_loss_is_age_plus_ethnicity_plus_gender():
    from torch.nn import functional as F

    from faceattrs.training.losses import age_loss

    out = {"age": torch.zeros(2, 117), "ethnicity": torch.zeros(2, 5), "gender": torch.zeros(2, 2)}
    targets = {"age": torch.tensor([5.0, 40.0]), "race": torch.tensor([0, -1]), "gender": torch.tensor([0, 1])}
    loss = build_recipe("multitask", pretrained=False).loss(out, targets)
    smoothing = MultiTaskSettings().label_smoothing
    expected = (
        age_loss(out["age"], targets["age"])
        + F.cross_entropy(out["ethnicity"][:1], targets["race"][:1], label_smoothing=smoothing)  # -1: no label
        + F.cross_entropy(out["gender"], targets["gender"], label_smoothing=smoothing)
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_an_unknown_setting_is_refused():
    with pytest.raises(TypeError):
        build_recipe("multitask", age_loss="ce")
