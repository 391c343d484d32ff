"""Properties of the constructed joint space that LADS is tested on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from constructions.joint_space import JointSpace, JointSpaceConfig, angle_deg
from theory.errors import InputError

SMALL = dict(dim=48, n_classes=4, n_domains=3, n_train=5, n_val=3, n_test=4)

rhos = st.floats(0.0, 90.0, allow_nan=False)
seeds = st.integers(0, 2**16)


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


@given(rho=rhos, seed=seeds)
def test_text_shift_makes_angle_rho_with_describable_image_shift_for_every_class(rho, seed):
    space = JointSpace(JointSpaceConfig(rho_deg=rho, seed=seed, **SMALL))
    for m in range(1, 3):
        for y in range(4):
            text_shift = space.text_mean(m, y) - space.text_mean(0, y)
            image_shift = space.describable_shift(y, m)
            assert _cos(text_shift, image_shift) == pytest.approx(np.cos(np.radians(rho)), abs=1e-9)
            assert angle_deg(text_shift, image_shift) == pytest.approx(rho, abs=1e-3)


@given(rho=rhos, seed=seeds)
def test_class_mean_text_shift_makes_angle_rho_with_mean_true_image_shift(rho, seed):
    space = JointSpace(JointSpaceConfig(rho_deg=rho, seed=seed, **SMALL))
    for m in (1, 2):
        img = np.mean([space.image_mean(y, m) - space.image_mean(y, 0) for y in range(4)], axis=0)
        txt = np.mean([space.text_mean(m, y) - space.text_mean(0, y) for y in range(4)], axis=0)
        assert _cos(txt, img) == pytest.approx(np.cos(np.radians(rho)), abs=1e-9)
        assert angle_deg(txt, img) == pytest.approx(rho, abs=1e-3)


def test_true_image_shift_is_not_a_pure_translation():
    space = JointSpace(JointSpaceConfig(**SMALL))
    shifts = [space.image_mean(y, 1) - space.image_mean(y, 0) for y in range(4)]
    assert np.linalg.norm(shifts[0] - shifts[1]) > 0.5
    flat = JointSpace(JointSpaceConfig(interaction=0.0, cue_scale=0.0, **SMALL))
    flat_shifts = [flat.image_mean(y, 1) - flat.image_mean(y, 0) for y in range(4)]
    assert np.allclose(flat_shifts[0], flat_shifts[1])


@given(seed=seeds)
def test_class_directions_orthonormal_and_blocks_mutually_orthogonal(seed):
    space = JointSpace(JointSpaceConfig(seed=seed, **SMALL))
    c = space.class_dirs
    assert np.allclose(c @ c.T, np.eye(4), atol=1e-10)
    blocks = [
        c, space.cue, space.style, space.text_only,
        space.inter.reshape(-1, 48), space.inter_text.reshape(-1, 48),
        np.stack([space.gap_img, space.gap_txt]),
    ]  # fmt: skip
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            assert np.abs(a @ b.T).max() < 1e-10


def test_cue_exists_only_in_the_training_domain():
    space = JointSpace(JointSpaceConfig(**SMALL))
    for y in range(4):
        assert space.image_mean(y, 0) @ space.cue[y] > 0.5
        for m in (1, 2):
            assert abs(space.image_mean(y, m) @ space.cue[y]) < 1e-10


def test_embeddings_are_unit_norm_and_splits_have_the_right_domains():
    task = JointSpace(JointSpaceConfig(**SMALL)).task()
    for x in (task.train_x, task.val_x, task.test_x, task.class_prompts):
        assert np.allclose(np.linalg.norm(x, axis=-1), 1.0)
    assert np.allclose(np.linalg.norm(task.domain_prompts, axis=-1), 1.0)
    assert set(task.train_d) == {0} and set(task.val_d) == {0}
    assert set(task.test_d) == {0, 1, 2}
    assert np.bincount(task.test_y * 3 + task.test_d).tolist() == [4] * 12


@given(seed=seeds)
def test_bias_variant_attribute_equals_class_in_all_training_and_validation_data(seed):
    cfg = JointSpaceConfig(bias=True, n_classes=2, n_domains=2, seed=seed, dim=32)
    task = JointSpace(cfg).task()
    assert np.array_equal(task.train_d, task.train_y)  # 100% correlation
    assert np.array_equal(task.val_d, task.val_y)
    groups = np.bincount(task.test_y * 2 + task.test_d, minlength=4)
    assert groups.tolist() == [cfg.n_test] * 4  # every group, equally, at test time


def test_images_do_not_depend_on_rho_but_prompts_do():
    a = JointSpace(JointSpaceConfig(rho_deg=0.0, **SMALL)).task()
    b = JointSpace(JointSpaceConfig(rho_deg=60.0, **SMALL)).task()
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_x, b.test_x)
    assert not np.allclose(a.domain_prompts, b.domain_prompts)


def test_same_seed_same_space_other_seed_other_space():
    a = JointSpace(JointSpaceConfig(seed=3, **SMALL)).task()
    b = JointSpace(JointSpaceConfig(seed=3, **SMALL)).task()
    c = JointSpace(JointSpaceConfig(seed=4, **SMALL)).task()
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(
        a.domain_prompts, b.domain_prompts
    )
    assert not np.allclose(a.train_x, c.train_x)


def test_zero_shot_separates_classes_better_than_chance():
    task = JointSpace(JointSpaceConfig(class_noise=0.1, **SMALL)).task()
    pred = np.argmax(task.test_x @ task.class_prompts.T, axis=1)
    assert np.mean(pred == task.test_y) > 0.9


@pytest.mark.parametrize(
    "bad",
    [
        {"rho_deg": 91.0},
        {"rho_deg": -1.0},
        {"dim": 10},
        {"n_classes": 1},
        {"bias": True},  # 10 classes, 3 domains
        {"noise": float("nan")},
        {"n_train": 0},
        {"n_test": 2.5},
        {"domain_scale": 0.0},
        {"bias": 1},
    ],
)
def test_bad_configs_raise_input_error_naming_the_value(bad):
    with pytest.raises(InputError):
        JointSpaceConfig(**bad)


def test_config_round_trips_through_json():
    cfg = JointSpaceConfig(rho_deg=37.5, seed=9, bias=False)
    assert JointSpaceConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(InputError):
        JointSpaceConfig.from_dict({**json.loads(cfg.to_json()), "colour": 1})
