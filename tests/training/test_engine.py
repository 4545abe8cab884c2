import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from faceattrs.data.cache import load_faces
from faceattrs.training.checkpoint import load_optimizer, load_weights, save_optimizer, save_weights
from faceattrs.training.early_stopping import PatienceStop
from faceattrs.training.engine import predict, train
from faceattrs.training.recipes import build_recipe


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(v, w, msg=k)


@pytest.fixture
def faces(face_folder, tmp_path):
    return load_faces(face_folder, 80, cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("name", ["seed-ethnicity", "seed-age"])
def test_two_epoch_smoke_run_of_each_recipe(name, faces, tmp_path):
    recipe = build_recipe(name)
    run = tmp_path / "run"
    result = train(recipe, faces, faces, run, epochs=2, stopping_rules=[], progress=False)
    assert result.epochs_run == 2
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) for row in history)
    assert (run / "history.csv").read_text().startswith("epoch,train_loss,")
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == name and config["epochs_run"] == 2
    reloaded = load_weights(recipe.build_model(), run / "model.safetensors")
    a, b = predict(result.model, recipe, faces), predict(reloaded, recipe, faces)
    key = "age" if recipe.task == "age" else "ethnicity_proba"
    np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-6)


def test_resume_continues_to_the_same_weights(faces, tmp_path):
    recipe = build_recipe("seed-age")
    full = train(recipe, faces, faces, tmp_path / "full", epochs=3, stopping_rules=[], progress=False)
    train(recipe, faces, faces, tmp_path / "part", epochs=2, stopping_rules=[], progress=False)
    resumed = train(recipe, faces, faces, tmp_path / "part", epochs=3, stopping_rules=[], resume=True, progress=False)
    assert resumed.epochs_run == 3
    assert_same_weights(full.model, resumed.model)


def test_patience_restores_best_weights(faces, tmp_path):
    recipe = build_recipe("seed-age")
    rule = PatienceStop("val_mae", mode="min", patience=1)
    result = train(recipe, faces, faces, tmp_path / "r", epochs=6, stopping_rules=[rule], progress=False)
    best = min(result.history, key=lambda row: row["val_mae"])
    mae = np.abs(predict(result.model, recipe, faces).age - faces.age).mean()
    assert mae == pytest.approx(best["val_mae"], rel=1e-5)


def test_optimizer_and_weights_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    save_weights(model, tmp_path / "m.safetensors")
    save_optimizer(opt, tmp_path / "o.safetensors")
    model2 = load_weights(
        torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)), tmp_path / "m.safetensors"
    )
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    load_optimizer(opt2, tmp_path / "o.safetensors")
    assert opt2.param_groups[0]["lr"] == 0.01
    for s1, s2 in zip(opt.state.values(), opt2.state.values(), strict=True):
        torch.testing.assert_close(s1["exp_avg"], s2["exp_avg"])
    assert not (tmp_path / "m.safetensors").read_bytes().startswith(b"\x80")  # not a pickle


def test_multitask_recipe_two_epoch_smoke_run(face_folder, tmp_path):
    recipe = build_recipe("multitask", image_size=64, batch_size=16, epochs=2)
    faces = load_faces(face_folder, 64, cache_dir=tmp_path / "cache", progress=False)
    result = train(recipe, faces, faces, tmp_path / "run", progress=False)
    assert result.epochs_run == 2
    row = result.history[-1]
    assert {"val_mae", "val_accuracy", "val_macro_f1", "val_gender_accuracy"} <= set(row)
    preds = predict(result.model, recipe, faces)
    assert preds.age.shape == (64,) and preds.ethnicity_proba.shape == (64, 5)
    np.testing.assert_allclose(preds.gender_proba.sum(1), 1, rtol=1e-5)
    assert preds.age_logits.shape == (64, 117)
    resumed = train(recipe, faces, faces, tmp_path / "run", epochs=3, resume=True, progress=False)
    assert resumed.epochs_run == 3


def test_ema_weights_are_shipped_and_resume_exactly(faces, tmp_path):
    recipe = replace(build_recipe("seed-age"), ema_decay=0.9)
    full = train(recipe, faces, faces, tmp_path / "full", epochs=3, stopping_rules=[], progress=False)
    assert {"val_mae", "raw_val_mae"} <= set(full.history[-1])
    raw = load_weights(recipe.build_model(), tmp_path / "full" / "checkpoint" / "last.safetensors")
    shipped = load_weights(recipe.build_model(), tmp_path / "full" / "model.safetensors")
    # the shipped weights are the average, not the last step's
    assert not torch.equal(raw.state_dict()["regressor.9.weight"], shipped.state_dict()["regressor.9.weight"])
    train(recipe, faces, faces, tmp_path / "part", epochs=2, stopping_rules=[], progress=False)
    resumed = train(recipe, faces, faces, tmp_path / "part", epochs=3, stopping_rules=[], resume=True, progress=False)
    assert_same_weights(full.model, resumed.model)


def test_mixup_of_identical_faces_is_the_plain_loss():
    from faceattrs.training.engine import _mixup_loss

    recipe = replace(build_recipe("seed-age"), mixup_alpha=0.4)
    model = recipe.build_model().eval()
    x = torch.rand(1, 3, 80, 80).repeat(6, 1, 1, 1)
    targets = {"age": torch.full((6,), 31.0), "gender": torch.zeros(6, dtype=torch.long),
               "race": torch.ones(6, dtype=torch.long)}  # fmt: skip
    torch.manual_seed(0)
    mixed = _mixup_loss(model, recipe, x, targets)
    torch.testing.assert_close(mixed, recipe.loss(model(x), targets))


def test_mixup_runs_resume_exactly_and_keep_every_epoch(faces, tmp_path):
    recipe = replace(build_recipe("seed-age"), mixup_alpha=0.4)
    plain = train(build_recipe("seed-age"), faces, faces, tmp_path / "plain", epochs=1, stopping_rules=[],
                  progress=False)  # fmt: skip
    full = train(recipe, faces, faces, tmp_path / "full", epochs=3, stopping_rules=[], progress=False)
    assert sorted(p.name for p in (tmp_path / "full" / "checkpoint").glob("epoch*")) == [
        "epoch01.safetensors", "epoch02.safetensors", "epoch03.safetensors"]  # fmt: skip
    train(recipe, faces, faces, tmp_path / "part", epochs=2, stopping_rules=[], progress=False)
    resumed = train(recipe, faces, faces, tmp_path / "part", epochs=3, stopping_rules=[], resume=True, progress=False)
    assert_same_weights(full.model, resumed.model)
    # mixup changes what is learnt: after one epoch the weights differ from a run without it
    first = load_weights(recipe.build_model(), tmp_path / "full" / "checkpoint" / "epoch01.safetensors")
    pairs = zip(first.state_dict().values(), plain.model.state_dict().values(), strict=True)
    assert not all(torch.equal(v, w) for v, w in pairs)


def test_a_multitask_run_learns_from_exact_ages_and_age_groups_and_reports_each(faces, tmp_path):
    from faceattrs.data.cache import FaceArrays, concat_faces

    low = (faces.age // 10 * 10).astype(np.int16)
    grouped = FaceArrays(faces.names, faces.images, faces.age, faces.gender, faces.race, low, low + 9)
    both = concat_faces(faces.subset(np.arange(32)), grouped.subset(np.arange(32, 64)))
    recipe = build_recipe("multitask", image_size=80, batch_size=16, pretrained=False)
    result = train(recipe, both, both, tmp_path / "run", epochs=1, stopping_rules=[], progress=False)
    (row,) = result.history
    assert np.isfinite(row["train_loss"])
    assert {"val_mae", "val_gender_accuracy", "val_groups_age_accuracy", "val_groups_gender_accuracy"} <= set(row)
    preds = predict(result.model, recipe, both.subset(np.arange(32, 64)))
    inside = (preds.age >= low[32:]) & (preds.age <= low[32:] + 9)
    assert row["val_groups_age_accuracy"] == pytest.approx(inside.mean())
