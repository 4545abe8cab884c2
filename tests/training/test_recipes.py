import math

import pytest
import torch

from faceattrs.training.recipes import build_recipe


def _outputs_and_targets():
    out = {"age": torch.zeros(2, 117), "ethnicity": torch.zeros(2, 5), "gender": torch.zeros(2, 2)}
    targets = {"age": torch.tensor([5.0, 40.0]), "race": torch.tensor([0, 1]), "gender": torch.tensor([0, 1])}
    return out, targets


def test_child_gender_weight_weighs_only_childrens_gender_term():
    out, targets = _outputs_and_targets()
    plain = build_recipe("multitask", pretrained=False).loss(out, targets)
    weighted = build_recipe("multitask", pretrained=False, child_gender_weight=4.0).loss(out, targets)
    # uniform gender logits cost ln 2 per face; the child (age 5) now counts 4 times: mean (4 + 1) / 2
    assert float(weighted - plain) == pytest.approx((2.5 - 1) * math.log(2), abs=1e-6)
    older = {**targets, "age": torch.tensor([30.0, 40.0])}
    assert float(build_recipe("multitask", pretrained=False, child_gender_weight=4.0).loss(out, older)) == float(
        build_recipe("multitask", pretrained=False).loss(out, older)
    )


def test_the_default_recipe_keeps_the_plain_gender_cross_entropy():
    assert build_recipe("multitask", pretrained=False).settings["child_gender_weight"] == 1.0
