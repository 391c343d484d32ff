"""The LADS runner, the features loader, the open_clip path and ``parrots lads``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from constructions.joint_space import JointSpace, JointSpaceConfig
from experiments.cli import main
from experiments.lads import LadsRunConfig, run_methods, summarise, synthetic_run
from experiments.lads_data import check_open_clip, load_features, save_features
from theory.errors import InputError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The networks are tiny: with two threads on a loaded 2-core machine, OpenMP waits dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_SPACE = JointSpaceConfig(dim=48, n_classes=4, n_domains=3, n_train=10, n_val=5, n_test=10)
TINY_RUN = LadsRunConfig(hidden=8, aug_epochs=4, probe_epochs=8)
BASELINES = {"zs_generic", "zs_domain", "lp", "lp_zs_init", "lp_zs_ensemble", "addition"}
LADS = {"lads_alpha0", "lads_alpha0.5", "lads_alpha1", "lads_zs_ensemble"}


def test_run_methods_scores_every_method_and_is_reproducible_per_seed():
    a = synthetic_run(TINY_SPACE, TINY_RUN)
    assert set(a["methods"]) == BASELINES | LADS
    assert set(a["diagnostics"]) == {"addition", "lads_alpha0", "lads_alpha0.5", "lads_alpha1"}
    for m in a["methods"].values():
        for key in ("train_domain", "unseen", "extended", "worst_domain"):
            assert 0.0 <= m[key] <= 1.0
        assert m["worst_domain"] <= min(m["train_domain"], m["unseen"]) + 1e-12
        # extended accuracy is pooled: a weighted mean of training and unseen accuracy
        assert m["extended"] == pytest.approx((m["train_domain"] + 2 * m["unseen"]) / 3)
    assert synthetic_run(TINY_SPACE, TINY_RUN) == a
    assert synthetic_run(TINY_SPACE, replace(TINY_RUN, seed=1)) != a


def test_bias_setting_adds_the_no_domain_labels_ablation():
    space = JointSpaceConfig(bias=True, n_classes=2, n_domains=2, dim=32, n_train=10, n_test=10)
    out = synthetic_run(space, replace(TINY_RUN, alphas=(0.5,)))
    assert "lads_alpha0.5_no_domain_labels" in out["methods"]
    assert out["methods"]["lp"]["worst_group"] <= out["methods"]["lp"]["mean_group"]


def test_summarise_gives_mean_and_sample_std():
    rows = [
        {"methods": {"lp": {"unseen": 0.5, "per_domain": [1]}}, "diagnostics": {}},
        {"methods": {"lp": {"unseen": 0.7, "per_domain": [1]}}, "diagnostics": {}},
    ]
    s = summarise(rows)
    assert s["lp"]["unseen"]["mean"] == pytest.approx(0.6)
    assert s["lp"]["unseen"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert "per_domain" not in s["lp"]


def test_run_config_round_trips_and_validates():
    cfg = LadsRunConfig(alphas=(0.0, 1.0), seed=3)
    assert LadsRunConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(InputError):
        LadsRunConfig(alphas=(2.0,))
    with pytest.raises(InputError):
        LadsRunConfig(addition_lambda=-1.0)


# --------------------------------------------------------------------------------------------
# The features file


@pytest.fixture
def task():
    return JointSpace(TINY_SPACE).task()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_features_file_round_trips(tmp_path, task, suffix):
    path = tmp_path / f"features{suffix}"
    meta = {"class_names": ["a", "b", "c", "d"], "domain_names": ["photo", "painting", "sketch"]}
    save_features(path, task, meta)
    loaded, got_meta = load_features(path)
    assert got_meta["class_names"] == meta["class_names"]
    assert got_meta["bias"] is False
    for name in ("train_x", "test_x", "domain_prompts", "class_prompts"):
        assert np.allclose(getattr(loaded, name), getattr(task, name), atol=1e-6)
    for name in ("train_y", "val_d", "test_d"):
        assert np.array_equal(getattr(loaded, name), getattr(task, name))


def _write_npz(path, task, **changes):
    arrays = {
        f"{s}_{k}": getattr(task, f"{s}_{a}")
        for s in ("train", "val", "test")
        for k, a in (("features", "x"), ("labels", "y"), ("domains", "d"))
    }
    arrays.update(domain_prompts=task.domain_prompts, class_prompts=task.class_prompts)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"class_prompts": None}, "missing key.*class_prompts"),
        ({"train_labels": np.zeros(40)}, "train_labels must be integers"),
        ({"val_features": np.full((20, 48), np.nan)}, "val_features has non-finite"),
        ({"test_labels": np.full(120, 7)}, "test_y must hold integers"),
        ({"train_domains": np.ones(40, dtype=int)}, "train_d must be all 0"),
        ({"domain_prompts": np.ones((3, 4, 5))}, "class_prompts must have shape"),
        ({"train_features": np.zeros((40, 48))}, "all-zero row"),
    ],
)
def test_loader_rejects_malformed_files_naming_the_problem(tmp_path, task, change, message):
    path = tmp_path / "bad.npz"
    _write_npz(path, task, **change)
    with pytest.raises(InputError, match=message):
        load_features(path)


def test_loader_rejects_unreadable_and_unknown_files(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        load_features(corrupt)
    bad_st = tmp_path / "corrupt.safetensors"
    bad_st.write_bytes(b"\x00" * 3)
    with pytest.raises(InputError, match=r"not a readable \.safetensors"):
        load_features(bad_st)
    with pytest.raises(InputError, match="unknown features format"):
        load_features(_touch(tmp_path / "x.pt"))
    with pytest.raises(InputError, match="no such features file"):
        load_features(tmp_path / "absent.npz")


def _touch(path):
    path.write_bytes(b"")
    return path


def test_open_clip_path_names_what_is_missing(tmp_path):
    checkpoint = tmp_path / "ViT-L-14.pt"
    with pytest.raises(InputError, match=r"missing.*ViT-L-14\.pt"):
        check_open_clip(checkpoint)


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_runs_on_a_features_file_and_prints_json(tmp_path, task, capsys):
    path = tmp_path / "f.npz"
    save_features(path, task)
    assert main(["lads", "--features", str(path), "--seeds", "1", "--alpha", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["summary"]) >= BASELINES | {"lads_alpha0.5", "lads_zs_ensemble"}
    assert out["summary"]["lp"]["extended"]["n"] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["lads", "--synthetic", "--rho", "120"],
        ["lads", "--synthetic", "--seeds", "0"],
        ["lads", "--features", "/nonexistent/f.npz"],
        ["lads", "--features", "x.npz", "--sweep"],
        ["lads", "--encode", "m.json"],
    ],
)
def test_cli_user_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parrots lads: error:") and "\n" not in err


# --------------------------------------------------------------------------------------------
# The mechanism, end to end (one seed, a smaller space than the committed sweep)


@pytest.mark.slow
def test_lads_gain_over_probe_comes_from_language():
    space = JointSpaceConfig(n_train=50, n_test=40)
    cfg = LadsRunConfig(alphas=(0.5,), probe_epochs=100)
    aligned = run_methods(JointSpace(replace(space, rho_deg=0.0)).task(), cfg)["methods"]
    orthogonal = run_methods(JointSpace(replace(space, rho_deg=90.0)).task(), cfg)["methods"]
    gain_aligned = aligned["lads_alpha0.5"]["unseen"] - aligned["lp"]["unseen"]
    gain_orthogonal = orthogonal["lads_alpha0.5"]["unseen"] - orthogonal["lp"]["unseen"]
    assert gain_aligned > 0.1
    assert gain_orthogonal < 0.05
