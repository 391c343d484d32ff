from __future__ import annotations

import pytest

from theory.errors import InputError
from theory.splits import SplitSpec, fingerprint, standard_splits

# The bytes of this split, pinned: if a numpy release changes its random streams, or someone
# changes a generator or the encoding, this fails and the change must be deliberate.
PINNED = SplitSpec("length2", 16, 100, 1)
PINNED_DIGEST = "b2aa742894c8c56d976150249dfe3146de551076246501dca2f0f62b0586281e"


def test_same_spec_same_bytes():
    assert fingerprint(PINNED.make()) == fingerprint(PINNED.make()) == PINNED_DIGEST


def test_spec_json_round_trip():
    spec = SplitSpec("shortest_path", 12, 50, 3, family="er", directed=True)
    assert SplitSpec.from_json(spec.to_json()) == spec


def test_standard_splits_have_distinct_seeds_and_an_ood_size():
    splits = standard_splits("connectivity", 16, train=10, test=10)
    assert len({s.seed for s in splits.values()}) == 4
    assert splits["test_ood"].n == 32 and splits["train"].n == 16
    made = {name: spec.make() for name, spec in splits.items()}
    assert len({fingerprint(m) for m in made.values()}) == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"problem": "x"}, {"n": 2}, {"count": -1}, {"seed": 1.5}, {"family": "grid"}, {"n": True}],
)
def test_invalid_specs_are_rejected(kwargs):
    args = {"problem": "length2", "n": 8, "count": 4, "seed": 0} | kwargs
    with pytest.raises(InputError):
        SplitSpec(**args)


def test_corrupt_spec_json_is_rejected():
    with pytest.raises(InputError):
        SplitSpec.from_json('{"problem": "length2"')
