"""SweepConfig: expansion is the Cartesian product (seeds included), ids are config hashes,
JSON round trip, validation, and the catalogue's sweeps."""

from __future__ import annotations

import json

import pytest

from experiments.sweep import SCALES, SWEEP_NAMES, Grid, SweepConfig, get_sweep, run_id
from theory.bounds import graph_arch, matched_moe_width, param_counts
from theory.errors import InputError


def small() -> SweepConfig:
    return SweepConfig(
        name="demo",
        scale="tiny",
        task="selftest",
        fixed={"sleep": 0.0},
        axes={"value": [1, 2, 3], "fail": [False, True]},
        seeds=(0, 7),
    )


def test_expansion_is_the_cartesian_product_with_seeds() -> None:
    runs = small().runs()
    assert len(runs) == 3 * 2 * 2
    combos = {(r["value"], r["fail"], r["seed"]) for r in runs}
    assert combos == {(v, f, s) for v in (1, 2, 3) for f in (False, True) for s in (0, 7)}
    assert all(r["task"] == "selftest" and r["sleep"] == 0.0 for r in runs)


def test_grids_union_with_their_own_fixed_settings_and_axes() -> None:
    sweep = SweepConfig(
        name="g",
        scale="tiny",
        task="selftest",
        axes={"value": [0, 1]},
        grids=(Grid("a", fixed={"sleep": 0.0}), Grid("b", axes={"sleep": [0.0, 0.01]})),
    )
    runs = sweep.runs()
    assert len(runs) == 2 + 4
    assert sorted({r["grid"] for r in runs}) == ["a", "b"]


def test_run_id_is_a_hash_of_the_full_config_and_stable() -> None:
    config = {"task": "selftest", "grid": "all", "seed": 0, "value": 1}
    # pinned: a change to the hashing would orphan every committed row
    assert run_id(config) == run_id(dict(reversed(list(config.items()))))
    assert run_id(config) == "1db5427e014ae42b"
    for key, value in (("seed", 1), ("value", 2), ("grid", "x"), ("extra", None)):
        assert run_id({**config, key: value}) != run_id(config)
    ids = [run_id(r) for r in small().runs()]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", SWEEP_NAMES)
@pytest.mark.parametrize("scale", SCALES)
def test_catalogue_sweeps_round_trip_through_json(name: str, scale: str) -> None:
    sweep = get_sweep(name, scale)
    again = SweepConfig.from_json(sweep.to_json())
    assert again == sweep
    assert [run_id(r) for r in again.runs()] == [run_id(r) for r in sweep.runs()]
    json.dumps(sweep.runs())  # every run config is plain JSON


def test_reasoning_sweep_has_the_parameter_matched_comparison() -> None:
    sweep = get_sweep("reasoning", "small")
    matched = [r for r in sweep.runs() if r["grid"].startswith("matched")]
    assert matched
    for r in matched:
        m = matched_moe_width(
            r["vertices"], r["matched_dense_width"], r["experts"], heads=2, layers=r["layers"]
        )
        assert r["width"] == m.width
        dense = param_counts(
            graph_arch(r["vertices"], r["matched_dense_width"], heads=2, layers=r["layers"])
        )["total"]
        moe = param_counts(
            graph_arch(r["vertices"], r["width"], heads=2, layers=r["layers"], experts=r["experts"])
        )["total"]
        assert moe <= dense


@pytest.mark.parametrize(
    "kwargs",
    [
        {"axes": {"value": []}},
        {"axes": {"value": [1, 1]}},
        {"axes": {"value": "abc"}},
        {"seeds": ()},
        {"seeds": (0, 0)},
        {"seeds": (-1,)},
        {"fixed": {"seed": 3}},
        {"fixed": {"value": 1}, "axes": {"value": [1, 2]}},
        {"fixed": {"x": object()}},
        {"fixed": {"x": float("nan")}},
        {"scale": "huge"},
        {"task": "nope"},
        {"name": "has space"},
    ],
)
def test_invalid_sweeps_raise_input_error(kwargs: dict) -> None:
    base = {"name": "bad", "scale": "tiny", "task": "selftest", "axes": {"value": [1]}}
    with pytest.raises(InputError):
        SweepConfig(**{**base, **kwargs})


def test_unknown_sweep_or_scale_or_json_field_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown sweep"):
        get_sweep("nope", "tiny")
    with pytest.raises(InputError, match="unknown scale"):
        get_sweep("reasoning", "huge")
    with pytest.raises(InputError, match="unknown fields"):
        SweepConfig.from_dict({**small().to_dict(), "colour": "red"})
    with pytest.raises(InputError, match="not JSON"):
        SweepConfig.from_json("{")
