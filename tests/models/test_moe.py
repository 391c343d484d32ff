"""The known MoE traps, one test each: balance loss normalisation, router gradient at k = 1,
dropless routing, empty experts, dispatch paths agreeing, capacity drops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from models import transformer
from models.transformer import ModelConfig, MoEMLP


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; one keeps the suite fast on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def moe(experts=4, top_k=2, width=8, hidden=16, seed=0, dtype=torch.float64, **kw) -> MoEMLP:
    cfg = ModelConfig(
        vocab_size=10, max_len=8, width=width, mlp_hidden=hidden, experts=experts, top_k=top_k, **kw
    )
    layer = MoEMLP(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return layer.to(dtype)


def x_of(n, width=8, seed=1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("k", [1, 2])
def test_balance_loss_is_one_under_uniform_router_probabilities(k):
    layer = moe(experts=4, top_k=k)
    with torch.no_grad():
        layer.router.weight.zero_()  # p_e = 1/K for every token
    _, aux = layer(x_of(32))
    assert aux.balance_loss.item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_balance_loss_is_one_under_uniform_assignment(k):
    # token i prefers experts i mod K, then (i+1) mod K: every expert gets the same count,
    # while the router probabilities are far from uniform per token
    K, width, N = 4, 8, 32
    layer = moe(experts=K, top_k=k, width=width)
    x = torch.zeros(N, width, dtype=torch.float64)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(K, width))
        for i in range(N):
            x[i, i % K], x[i, (i + 1) % K] = 3.0, 2.0
    _, aux = layer(x)
    assert aux.counts.tolist() == [N * k // K] * K
    assert aux.balance_loss.item() == pytest.approx(1.0, abs=1e-12)


def test_balance_loss_is_K_when_everything_goes_to_one_expert():
    K = 4
    layer = moe(experts=K, top_k=1)
    x = torch.zeros(16, 8, dtype=torch.float64)
    x[:, 0] = 1.0
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0, 0] = 100.0
    _, aux = layer(x)
    assert aux.counts.tolist() == [16, 0, 0, 0]
    assert aux.balance_loss.item() == pytest.approx(K, rel=1e-6)


@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
def test_router_gets_gradient_from_the_task_with_k1(dispatch):
    layer = moe(experts=4, top_k=1, dispatch=dispatch)
    y, _ = layer(x_of(16))
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
    grad = layer.router.weight.grad
    assert grad is not None and grad.abs().sum() > 1e-6


def _direct(layer: MoEMLP, x: torch.Tensor) -> torch.Tensor:
    """Each token's output computed alone: Σ over its own top-k experts of w_e · expert_e(x)."""
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        p = torch.softmax(x[i] @ layer.router.weight.T, -1)
        w, e = p.topk(layer.top_k)
        if layer.renormalize:
            w = w / w.sum()
        for we, ee in zip(w, e, strict=True):
            h = torch.relu(x[i] @ layer.w1[ee].T + layer.b1[ee])
            out[i] += we * (h @ layer.w2[ee].T + layer.b2[ee])
    return out


@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
@pytest.mark.parametrize(("k", "renorm"), [(1, False), (2, False), (2, True), (3, True)])
def test_dropless_output_is_weighted_sum_of_exactly_its_k_experts(dispatch, k, renorm):
    layer = moe(experts=5, top_k=k, activation="relu", renormalize=renorm, dispatch=dispatch)
    x = x_of(24)
    y, aux = layer(x)
    torch.testing.assert_close(y, _direct(layer, x))
    assert int(aux.counts.sum()) == 24 * k and int(aux.dropped) == 0


@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_empty_experts_run_nothing(dispatch, dtype):
    # expert 3 can never be chosen; NaN weights there would poison any computation touching
    # it (0 · NaN = NaN), so a finite output and gradient show it was never run
    layer = moe(experts=4, top_k=2, dispatch=dispatch, dtype=dtype)
    x = x_of(20, dtype=dtype)
    x[:, 0] = x[:, 0].abs() + 1.0
    with torch.no_grad():
        layer.router.weight[3] = 0.0
        layer.router.weight[3, 0] = -100.0
        for p in (layer.w1, layer.w2, layer.b1, layer.b2):
            p[3] = float("nan")
    y, aux = layer(x)
    assert aux.counts[3] == 0
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    for p in layer.parameters():
        assert p.grad is not None
        assert torch.isfinite(p.grad).all()
    assert layer.w1.grad[3].abs().sum() == 0


@given(
    n=st.integers(0, 40),
    experts=st.integers(2, 6),
    data=st.data(),
    width=st.sampled_from([4, 8, 12]),
    bias=st.booleans(),
    capacity=st.sampled_from([None, 0.5, 1.0, 2.0]),
    masked=st.booleans(),
)
def test_grouped_and_loop_dispatch_agree_in_float64(
    n, experts, data, width, bias, capacity, masked
):
    k = data.draw(st.integers(1, experts))
    kw = {"experts": experts, "top_k": k, "width": width, "bias": bias, "capacity_factor": capacity}
    ref, fast = moe(dispatch="loop", **kw), moe(dispatch="grouped", **kw)
    x = x_of(n, width)
    bits = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mask = torch.tensor(bits, dtype=torch.bool) if masked else None
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    (yr, ar), (yf, af) = ref(xr, mask), fast(xf, mask)
    torch.testing.assert_close(yf, yr, rtol=1e-12, atol=1e-12)
    assert torch.equal(ar.counts, af.counts) and int(ar.dropped) == int(af.dropped)
    torch.testing.assert_close(af.balance_loss, ar.balance_loss, rtol=1e-6, atol=1e-7)
    if n == 0:
        assert yr.shape == yf.shape == (0, width)
        return
    if mask is not None and not mask.any():
        assert torch.all(yf == 0) and torch.all(yr == 0)
        return
    g = torch.randn(yr.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    (yr * g).sum().backward()
    (yf * g).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-10, atol=1e-10)
    for (name, pr), pf in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(pf.grad, pr.grad, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize(
    ("k", "capacity", "width", "hidden", "extra"),
    [
        (1, None, 16, 32, {}),
        (2, None, 16, 32, {}),
        (2, 1.0, 16, 32, {}),
        # rows of 6 and 10 fp32 values are not 16 bytes: the grouped path pads them with zeros
        (1, None, 6, 10, {"bias": True, "activation": "gelu"}),
        (2, 1.0, 6, 10, {"bias": True, "activation": "relu"}),
        (2, None, 10, 6, {"bias": False, "activation": "gelu"}),
    ],
)
def test_grouped_mm_path_matches_loop_in_float32(k, capacity, width, hidden, extra, monkeypatch):
    calls = []
    real = torch._grouped_mm

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(torch, "_grouped_mm", counting)
    kw = {
        "experts": 8,
        "top_k": k,
        "width": width,
        "hidden": hidden,
        "dtype": torch.float32,
        "capacity_factor": capacity,
        **extra,
    }
    ref, fast = moe(dispatch="loop", **kw), moe(dispatch="grouped", **kw)
    x = x_of(64, width, dtype=torch.float32)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yf = ref(xr)[0], fast(xf)[0]
    assert calls, "the grouped path should have used torch._grouped_mm on this shape"
    assert yf.shape == x.shape
    torch.testing.assert_close(yf, yr, rtol=1e-5, atol=1e-5)
    yr.square().sum().backward()
    yf.square().sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-4, atol=1e-4)
    for (name, pr), pf in zip(ref.named_parameters(), fast.parameters(), strict=True):
        assert pf.grad.shape == pf.shape, name  # the padding never reaches a parameter
        torch.testing.assert_close(pf.grad, pr.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_grouped_mm_support_rule():
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert transformer.grouped_mm_runs(cpu, torch.float32)
    assert not transformer.grouped_mm_runs(cpu, torch.float64)  # the segment loop runs it
    assert transformer.grouped_mm_runs(meta, torch.bfloat16)
    assert not transformer.grouped_mm_runs(meta, torch.float32)
    # 16-byte rows: 8 bf16 or 4 fp32 values
    assert [transformer.grouped_mm_pad(n, torch.bfloat16) for n in (1, 8, 98, 392)] == [
        8,
        8,
        104,
        392,
    ]
    assert [transformer.grouped_mm_pad(n, torch.float32) for n in (1, 4, 6, 10)] == [4, 4, 8, 12]


@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
def test_capacity_drops_the_overflow_first_come_first_served(dispatch):
    K, N = 4, 16
    layer = moe(experts=K, top_k=1, capacity_factor=1.0, dispatch=dispatch, activation="relu")
    x = x_of(N)
    x[:, 0] = x[:, 0].abs() + 1.0
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0, 0] = 50.0  # every token picks expert 0; capacity 16/4 = 4
    y, aux = layer(x)
    assert int(aux.dropped) == N - 4 and layer.last_dropped == N - 4
    assert aux.counts.tolist() == [4, 0, 0, 0]
    torch.testing.assert_close(y[:4], _direct(layer, x[:4]))
    assert torch.all(y[4:] == 0)


@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
@pytest.mark.parametrize("capacity", [None, 1.0])
def test_masked_tokens_are_not_routed(dispatch, capacity):
    # a masked token must change nothing: not the others' outputs, counts, drops or aux terms
    layer = moe(experts=4, top_k=2, dispatch=dispatch, capacity_factor=capacity)
    x = x_of(10)
    mask = torch.tensor([False, True, False] + [True] * 6 + [False])
    y, aux = layer(x, mask)
    y_real, aux_real = layer(x[mask])
    assert torch.all(y[~mask] == 0)
    torch.testing.assert_close(y[mask], y_real)
    assert torch.equal(aux.counts, aux_real.counts) and int(aux.dropped) == int(aux_real.dropped)
    torch.testing.assert_close(aux.balance_loss, aux_real.balance_loss)
    torch.testing.assert_close(aux.z_loss, aux_real.z_loss)


@pytest.mark.parametrize("capacity", [None, 0.5])
def test_grouped_mm_ignores_the_rows_after_the_last_segment(capacity, monkeypatch):
    # torch._grouped_mm leaves rows past its last offset uninitialised (forward output and
    # input gradient); unkept slots sit there, so outputs and gradients must still be exact
    kw = {"experts": 8, "top_k": 2, "width": 16, "hidden": 32, "dtype": torch.float32}
    ref = moe(dispatch="loop", capacity_factor=capacity, **kw)
    fast = moe(dispatch="grouped", capacity_factor=capacity, **kw)
    real = torch._grouped_mm

    class Poisoned(torch.autograd.Function):  # what an uninitialised row may hold, made certain
        @staticmethod
        def forward(ctx, a, w, offs):
            ctx.save_for_backward(a, w, offs)
            out = real(a, w, offs=offs)
            return out.masked_fill(torch.arange(out.shape[0])[:, None] >= offs[-1], torch.nan)

        @staticmethod
        def backward(ctx, grad):
            a, w, offs = ctx.saved_tensors
            with torch.enable_grad():
                a_, w_ = a.detach().requires_grad_(), w.detach().requires_grad_()
                ga, gw = torch.autograd.grad(real(a_, w_, offs=offs), (a_, w_), grad)
            tail = torch.arange(ga.shape[0])[:, None] >= offs[-1]
            return ga.masked_fill(tail, torch.nan), gw, None

    monkeypatch.setattr(torch, "_grouped_mm", lambda a, w, offs: Poisoned.apply(a, w, offs))
    x = x_of(48, 16, dtype=torch.float32)
    mask = torch.arange(48) % 5 != 0
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yf = ref(xr, mask)[0], fast(xf, mask)[0]
    torch.testing.assert_close(yf, yr, rtol=1e-5, atol=1e-5)
    yr.square().sum().backward()
    yf.square().sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-4, atol=1e-4)
    for (name, pr), pf in zip(ref.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(pf.grad, pr.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_z_loss_is_mean_squared_logsumexp():
    layer = moe(experts=3, top_k=1)
    x = x_of(5)
    _, aux = layer(x)
    want = torch.logsumexp(x @ layer.router.weight.T, -1).square().mean()
    torch.testing.assert_close(aux.z_loss, want.float())
