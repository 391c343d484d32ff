"""LADS networks and losses: hand-computed values, training behaviour, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.lads import (
    AugmentationNetwork,
    AugmenterConfig,
    EmbeddingTask,
    ProbeConfig,
    addition_augment,
    augment,
    bias_directions,
    class_consistency_loss,
    class_weights,
    domain_alignment_loss,
    domain_metrics,
    ensemble_probs,
    lads_loss,
    probe_logits,
    text_directions,
    train_augmenter,
    train_probe,
    zero_shot_logits,
    zero_shot_weights,
)
from theory.errors import InputError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The networks are tiny: with two threads on a loaded 2-core machine, OpenMP waits dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def t(a) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def test_domain_alignment_loss_hand_computed():
    x = t([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    fx = t([[1.0, 1.0], [1.0, 1.0], [3.0, 0.0]])  # shifts (0,1), (0,1), (2,0)
    direction = t([[0.0, 1.0], [0.0, -1.0], [1.0, 1.0]])
    # 1 − cos: 0, 2, 1 − 1/√2; the shift's size does not matter, only its direction
    expected = (0.0 + 2.0 + (1 - 1 / math.sqrt(2))) / 3
    assert float(domain_alignment_loss(x, fx, direction)) == pytest.approx(expected, abs=1e-6)


def test_class_consistency_loss_hand_computed_raw_cosines_no_temperature():
    fx = t([[2.0, 0.0], [0.0, 5.0]])  # normalised: (1,0), (0,1)
    prompts = t([[1.0, 0.0], [0.0, 3.0]])  # normalised: e1, e2
    y = torch.tensor([0, 0])
    # logits (1, 0) and (0, 1): CE = log(1 + e^-1) and log(1 + e^1)
    expected = (math.log(1 + math.e**-1) + math.log(1 + math.e)) / 2
    assert float(class_consistency_loss(fx, prompts, y)) == pytest.approx(expected, abs=1e-6)
    weighted = class_consistency_loss(fx, prompts, torch.tensor([0, 1]), t([1.0, 0.5]))
    # weighted mean: (1·log(1+e^-1) + 0.5·log(1+e^-1)) / 1.5
    assert float(weighted) == pytest.approx(math.log(1 + math.e**-1), abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_lads_loss_is_alpha_weighted_sum_of_its_parts(alpha):
    g = torch.Generator().manual_seed(0)
    x, fx, d = (torch.randn(5, 4, generator=g) for _ in range(3))
    prompts, y = torch.randn(3, 4, generator=g), torch.tensor([0, 1, 2, 0, 1])
    loss = lads_loss(x, fx, d, prompts, y, alpha)
    assert float(loss.domain_alignment) == pytest.approx(float(domain_alignment_loss(x, fx, d)))
    assert float(loss.class_consistency) == pytest.approx(
        float(class_consistency_loss(fx, prompts, y))
    )
    assert float(loss.total) == pytest.approx(
        alpha * float(loss.domain_alignment) + (1 - alpha) * float(loss.class_consistency), abs=1e-6
    )


def test_class_weights_inverse_frequency_max_one():
    assert class_weights(np.array([0, 0, 0, 0, 1, 1, 2]), 4).tolist() == [0.25, 0.5, 1.0, 1.0]


def test_text_directions_and_bias_directions_hand_computed():
    p = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 2.0], [0.0, 1.0, 1.0]]])
    dirs = text_directions(p, 0, 1)
    assert np.allclose(dirs[0], [-1 / math.sqrt(2), 0, 1 / math.sqrt(2)])
    expected1 = np.array([0, 1 / math.sqrt(2) - 1, 1 / math.sqrt(2)])
    assert np.allclose(dirs[1], expected1 / np.linalg.norm(expected1))
    per_example = bias_directions(p, np.array([0, 0]), np.array([0, 1]))
    assert np.allclose(per_example[0], dirs[0]) and np.allclose(per_example[1], -dirs[0])
    with pytest.raises(InputError):
        bias_directions(np.concatenate([p, p[:1]]), np.array([0]), np.array([0]))


def _toy(seed: int = 0, n: int = 64, dim: int = 8):
    """Two classes on e0/e1, a training domain along e2, an unseen one along e3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = np.eye(dim)[y] + np.eye(dim)[2] + 0.1 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prompts = np.stack([np.eye(dim)[[0, 1]] + np.eye(dim)[2], np.eye(dim)[[0, 1]] + np.eye(dim)[3]])
    return x, y, prompts, np.eye(dim)[[0, 1]]


def test_augmenter_with_alpha_one_moves_embeddings_along_the_text_direction():
    x, y, prompts, class_prompts = _toy()
    dirs = text_directions(prompts, 0, 1)[y]
    cfg = AugmenterConfig(alpha=1.0, hidden=16, epochs=60, lr=0.01, batch_size=32)
    trained = train_augmenter(x, y, dirs, x, y, dirs, class_prompts, cfg)
    with torch.no_grad():
        shift = trained.network(t(x)).numpy() - x
    cos = np.sum(shift * dirs, axis=1) / np.linalg.norm(shift, axis=1)
    assert cos.mean() > 0.95
    assert trained.val_loss[trained.best_epoch] < 0.5 * trained.val_loss[0]
    aug = augment(trained.network, x)  # normalise(f(x)) moved from e2 towards e3
    assert np.mean(aug[:, 3] - x[:, 3]) > 0.1 and np.allclose(np.linalg.norm(aug, axis=1), 1)


def test_augmenter_with_alpha_zero_ignores_direction_and_learns_the_classes():
    x, y, prompts, class_prompts = _toy()
    dirs = text_directions(prompts, 0, 1)[y]
    cfg = AugmenterConfig(alpha=0.0, hidden=16, epochs=60, lr=0.01, batch_size=32)
    trained = train_augmenter(x, y, dirs, x, y, dirs, class_prompts, cfg)
    assert trained.val_loss[trained.best_epoch] < trained.val_loss[0] - 0.1
    other = train_augmenter(x, y, -dirs, x, y, -dirs, class_prompts, cfg)
    for a, b in zip(trained.network.parameters(), other.network.parameters(), strict=True):
        assert torch.equal(a, b)  # the direction has no effect when α = 0


def test_augmenter_is_reproducible_per_seed_and_seed_matters():
    x, y, prompts, class_prompts = _toy()
    dirs = text_directions(prompts, 0, 1)[y]

    def params(seed: int) -> list[torch.Tensor]:
        cfg = AugmenterConfig(alpha=0.5, hidden=8, epochs=3, batch_size=16, seed=seed)
        net = train_augmenter(x, y, dirs, x, y, dirs, class_prompts, cfg).network
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = params(1), params(1), params(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))


def test_augmentation_network_shape_two_layer_mlp():
    net = AugmentationNetwork(12, 5)
    assert [tuple(p.shape) for p in net.parameters()] == [(5, 12), (5,), (12, 5), (12,)]
    assert net(torch.zeros(3, 12)).shape == (3, 12)


def test_probe_learns_and_zero_shot_init_starts_at_the_prompts():
    x, y, _, class_prompts = _toy()
    probe = train_probe(x, y, x, y, 2, ProbeConfig(epochs=30, batch_size=32))
    assert np.mean(probe_logits(probe, x).argmax(1) == y) > 0.95
    frozen = train_probe(x, y, x, y, 2, ProbeConfig(epochs=1, lr=1e-9), init_weight=class_prompts)
    assert np.allclose(frozen.weight.detach().numpy(), class_prompts, atol=1e-6)
    assert np.allclose(frozen.bias.detach().numpy(), 0.0, atol=1e-6)


def test_zero_shot_is_100_cos_and_ensemble_averages_softmaxes():
    x = np.array([[3.0, 4.0]])
    w = zero_shot_weights(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert np.allclose(zero_shot_logits(x, w), [[60.0, 80.0]])
    templates = zero_shot_weights(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]))
    assert np.allclose(templates, [[1 / math.sqrt(2), 1 / math.sqrt(2)]])
    probs = ensemble_probs(np.array([[0.0, 0.0]]), np.array([[0.0, 100.0]]))
    assert np.allclose(probs, [[0.25, 0.75]])


def test_addition_is_normalised_text_shift():
    out = addition_augment(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), lam=1.0)
    assert np.allclose(out, [[1 / math.sqrt(2), 1 / math.sqrt(2)]])


def test_domain_metrics_hand_computed():
    y = np.array([0, 1, 0, 1, 0, 1])
    d = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 0, 0, 1, 0])
    m = domain_metrics(pred, y, d, 3, 2)
    assert m["train_domain"] == 1.0 and m["per_domain"] == [1.0, 0.5, 0.0]
    assert m["unseen"] == 0.25 and m["extended"] == pytest.approx(0.5)
    assert m["worst_domain"] == 0.0 and m["worst_group"] == 0.0
    assert m["mean_group"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "bad",
    [{"alpha": 1.5}, {"alpha": -0.1}, {"hidden": 0}, {"lr": 0.0}, {"seed": -1}, {"epochs": 2.5}],
)
def test_bad_augmenter_configs_raise(bad):
    with pytest.raises(InputError):
        AugmenterConfig(**bad)


def test_configs_round_trip_through_json():
    cfg = AugmenterConfig(alpha=0.75, hidden=32, seed=4)
    assert AugmenterConfig.from_json(cfg.to_json()) == cfg
    probe = ProbeConfig(epochs=7, seed=2)
    assert ProbeConfig.from_json(probe.to_json()) == probe
    with pytest.raises(InputError):
        ProbeConfig.from_json('{"epochs": 3, "momentum": 0.9}')


def _task_arrays():
    x = np.eye(4)[[0, 1, 0, 1]]
    y, d = np.array([0, 1, 0, 1]), np.zeros(4, dtype=int)
    prompts = np.stack([np.eye(4)[:2], np.eye(4)[2:]])
    return x, y, d, prompts


def test_embedding_task_rejects_inconsistent_inputs():
    x, y, d, p = _task_arrays()
    EmbeddingTask(x, y, d, x, y, d, x, y, d, p, p[0])
    with pytest.raises(InputError, match="train_d"):
        EmbeddingTask(x, y, d + 1, x, y, d, x, y, d, p, p[0])  # not the training domain
    with pytest.raises(InputError, match="test_y"):
        EmbeddingTask(x, y, d, x, y, d, x, y + 5, d, p, p[0])
    with pytest.raises(InputError, match="class_prompts"):
        EmbeddingTask(x, y, d, x, y, d, x, y, d, p, p[0][:, :3])
    with pytest.raises(InputError, match="val_x"):
        EmbeddingTask(x, y, d, x * np.nan, y, d, x, y, d, p, p[0])
