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


def test_the_mixed_loss_of_exact_ages_alone_is_the_plain_loss_and_groups_weigh_as_asked():
    from faceattrs.training.recipes import mixed_labels_loss

    torch.manual_seed(0)
    out = {"age": torch.randn(4, 117), "ethnicity": torch.randn(4, 5), "gender": torch.randn(4, 2)}
    targets = {"age": torch.tensor([5.0, 40.0, 61.0, 23.0]), "race": torch.tensor([0, -1, 3, 2]),
               "gender": torch.tensor([0, 1, 1, 0])}  # fmt: skip
    recipe = build_recipe("multitask", pretrained=False)
    exact = targets | {"age_low": targets["age"].long(), "age_high": targets["age"].long()}
    assert float(recipe.loss(out, exact)) == pytest.approx(float(recipe.loss(out, targets)), rel=1e-5)

    groups = exact | {"age_low": torch.tensor([5, 30, 60, 23]), "age_high": torch.tensor([5, 39, 69, 23])}
    settings = MultiTaskSettings()
    heavy = mixed_labels_loss(out, groups, MultiTaskSettings(group_label_weight=3.0))
    plain = mixed_labels_loss(out, groups, settings)
    assert float(heavy) != pytest.approx(float(plain))
    # weight 0 on the group faces: the loss of the exact-age faces alone
    alone = {k: v[[0, 3]] for k, v in exact.items()}
    zero = mixed_labels_loss(out, groups, MultiTaskSettings(group_label_weight=0.0))
    assert float(zero) == pytest.approx(float(recipe.loss({k: v[[0, 3]] for k, v in out.items()}, alone)), rel=1e-5)


def test_the_group_likelihood_rewards_mass_inside_the_group():
    from faceattrs.training.losses import age_interval_nll

    ages = torch.arange(117.0)
    inside = -0.5 * ((ages - 35) / 3) ** 2  # a distribution centred in the 30-39 group
    outside = -0.5 * ((ages - 55) / 3) ** 2
    low, high = torch.tensor([30, 30]), torch.tensor([39, 39])
    nll = age_interval_nll(torch.stack([inside, outside]), low, high)
    assert float(nll[0]) < 0.15 and float(nll[1]) > 10  # about 90% of the mass inside, against almost none
