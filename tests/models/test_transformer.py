"""The transformer: config validation, parameter counts, embeddings, masking, dtypes, and
the one-layer theory model against an independent einsum implementation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from models.transformer import ModelConfig, MoEMLP, Transformer
from theory.encoding import pair_blocks, vocab_size
from theory.errors import InputError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; one keeps the suite fast on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BASE = {"vocab_size": 20, "max_len": 16, "width": 8, "heads": 2}


def cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**BASE, **kw})


@pytest.mark.parametrize(
    "bad",
    [
        {"top_k": 3, "experts": 2},  # top-k > K
        {"width": 10, "heads": 3},  # width not divisible by heads
        {"width": 0},
        {"layers": 0},
        {"heads": 0},
        {"experts": 0},
        {"top_k": 0},
        {"mlp_hidden": 0},
        {"norm": "batch"},
        {"activation": "tanh"},
        {"pos_emb": "rotary"},
        {"head": "regress"},
        {"dispatch": "magic"},
        {"num_classes": None},  # classify without classes
        {"head": "next_token"},  # next_token with num_classes given
        {"tie_embeddings": True},  # tied read-out on a classifier
        {"experts": 4, "top_k": 1, "renormalize": True},  # k = 1 renorm: no router gradient
        {"capacity_factor": 1.0},  # capacity on a dense model
        {"experts": 4, "capacity_factor": 0.0},
        {"pad_token": 20},  # outside the vocabulary
        {"pair_blocks": ((10, 3, 4),)},  # block runs past the vocabulary
        {"pair_blocks": ((3, 2, 2), (5, 2, 2))},  # overlapping blocks
        {"pair_blocks": ((0, 2, 2),)},  # PAD inside a block
        {"pair_blocks": ((3, 0, 2),)},
        {"width": True},  # bool is not a size
    ],
)
def test_config_rejects_each_invalid_combination(bad):
    with pytest.raises(InputError):
        cfg(**bad)


def test_config_json_round_trip_and_unknown_fields():
    c = cfg(experts=4, top_k=2, pair_blocks=((3, 2, 2), (7, 3, 3)), capacity_factor=1.5)
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert c.mlp_hidden == 32  # default 4m, resolved
    with pytest.raises(InputError, match="unknown"):
        ModelConfig.from_dict({**c.to_dict(), "depth": 3})


@given(
    norm=st.sampled_from(["none", "layer", "rms"]),
    bias=st.booleans(),
    layers=st.integers(1, 3),
    experts=st.integers(1, 5),
    data=st.data(),
    pos=st.sampled_from(["none", "learned", "sinusoidal"]),
    factorized=st.booleans(),
    head=st.sampled_from(["classify", "next_token", "tied"]),
)
def test_param_counts_equal_closed_form(norm, bias, layers, experts, data, pos, factorized, head):
    top_k = data.draw(st.integers(1, experts))
    heads = {
        "classify": {},
        "next_token": {"head": "next_token", "num_classes": None},
        "tied": {"head": "next_token", "num_classes": None, "tie_embeddings": True},
    }[head]
    c = cfg(
        norm=norm,
        bias=bias,
        layers=layers,
        experts=experts,
        top_k=top_k,
        pos_emb=pos,
        mlp_hidden=12,
        pair_blocks=((3, 2, 3), (9, 2, 2)) if factorized else (),
        **heads,
    )
    model = Transformer(c)
    closed = c.num_params()
    assert model.total_params() == closed["total"]
    assert model.active_params() == closed["active"]
    assert (closed["total"] - closed["active"]) == layers * (experts - top_k) * c.expert_params()


def test_one_layer_param_count_by_hand():
    # m = 8, d = 32, K = 4, k = 2, vocab 20, 2 classes, no norm, biases:
    c = cfg(norm="none", experts=4, top_k=2)
    m, d, K, k = 8, 32, 4, 2
    expert = 2 * m * d + d + m
    total = 20 * m + (4 * m * m + 4 * m) + K * expert + K * m + (2 * m + 2)
    assert Transformer(c).total_params() == total
    assert Transformer(c).active_params() == total - (K - k) * expert


def test_factorized_embedding_is_sum_of_slot_embeddings():
    n = 5
    c = ModelConfig(
        vocab_size=vocab_size(n), max_len=8, width=6, heads=1, pair_blocks=pair_blocks(n)
    )
    emb = Transformer(c).embed
    (e0, rows, cols), (q0, _, _) = pair_blocks(n)
    table = emb.table()
    for r in range(rows):
        for col in range(cols):
            want = emb.rows[0].weight[r] + emb.cols[0].weight[col]
            torch.testing.assert_close(table[e0 + r * cols + col], want, rtol=0, atol=0)
            want = emb.rows[1].weight[r] + emb.cols[1].weight[col]
            torch.testing.assert_close(table[q0 + r * cols + col], want, rtol=0, atol=0)
    plain = [i for i in range(c.vocab_size) if i < e0]
    torch.testing.assert_close(table[plain], emb.token.weight, rtol=0, atol=0)


def _theory_forward(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """Independent einsum implementation of the one-layer, no-norm, ReLU, dense model."""
    p = dict(model.named_parameters())
    H = model.cfg.heads
    h = p["embed.token.weight"][tokens]  # (B, N, m)
    B, N, m = h.shape
    d = m // H

    def lin(name, x):
        return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]

    q = lin("blocks.0.attn.q_proj", h).reshape(B, N, H, d)
    k = lin("blocks.0.attn.k_proj", h).reshape(B, N, H, d)
    v = lin("blocks.0.attn.v_proj", h).reshape(B, N, H, d)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(d)
    pad = tokens == 0
    scores = scores.masked_fill(pad[:, None, None, :] & ~torch.eye(N, dtype=torch.bool), -1e300)
    att = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v).reshape(B, N, m)
    h = h + lin("blocks.0.attn.o_proj", att)
    h = h + lin("blocks.0.mlp.fc2", torch.relu(lin("blocks.0.mlp.fc1", h)))
    return lin("head", h[:, -1])


def test_one_layer_theory_model_matches_independent_implementation():
    c = cfg(norm="none", activation="relu", layers=1, heads=2, num_classes=3)
    model = Transformer(c, torch.Generator().manual_seed(1)).double()
    tokens = torch.randint(1, 20, (5, 9), generator=torch.Generator().manual_seed(2))
    tokens[:, :3] = 0  # left padding
    torch.testing.assert_close(model(tokens), _theory_forward(model, tokens))


@pytest.mark.parametrize("experts", [1, 4])
def test_left_padding_does_not_change_the_answer(experts):
    c = cfg(experts=experts, top_k=min(2, experts), layers=2)
    model = Transformer(c).double()
    tokens = torch.randint(1, 20, (3, 6), generator=torch.Generator().manual_seed(0))
    padded = torch.cat([torch.zeros(3, 5, dtype=torch.long), tokens], 1)
    torch.testing.assert_close(model(padded), model(tokens))


def test_causal_attention_ignores_later_tokens():
    c = cfg(causal=True, head="next_token", num_classes=None, layers=2, pos_emb="learned")
    model = Transformer(c).double()
    tokens = torch.randint(1, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] % 19) + 1
    a, b = model(tokens), model(changed)
    assert a.shape == (2, 8, 20)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_positions_matter_only_with_a_positional_embedding():
    tokens = torch.tensor([[3, 4, 5, 6]])
    flipped = torch.tensor([[5, 3, 4, 6]])  # same last token, others reordered
    for pos, same in (("none", True), ("learned", False), ("sinusoidal", False)):
        model = Transformer(cfg(pos_emb=pos)).double()
        assert torch.allclose(model(tokens), model(flipped)) is same


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("experts", [1, 4])
def test_runs_in_every_dtype(dtype, experts):
    c = cfg(experts=experts, top_k=min(2, experts), norm="none", activation="relu", width=16)
    model = Transformer(c)
    tokens = torch.randint(0, 20, (4, 7), generator=torch.Generator().manual_seed(0))
    tokens[:, -1] = 5
    ref = model.double()(tokens)
    out = model.to(dtype)(tokens)
    assert out.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 0.1)
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_parameter_names_are_the_documented_ones():
    names = set(dict(Transformer(cfg(norm="none", experts=3, top_k=1)).named_parameters()))
    assert {
        "embed.token.weight",
        "blocks.0.attn.q_proj.weight",
        "blocks.0.attn.o_proj.bias",
        "blocks.0.mlp.router.weight",
        "blocks.0.mlp.w1",
        "blocks.0.mlp.b2",
        "head.weight",
    } <= names
    assert not any("norm" in n for n in names)
    dense = set(dict(Transformer(cfg()).named_parameters()))
    assert {"blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.bias", "norm_f.weight"} <= dense
    assert isinstance(Transformer(cfg(experts=2)).blocks[0].mlp, MoEMLP)


def test_too_long_input_is_an_input_error():
    with pytest.raises(InputError, match="max_len"):
        Transformer(cfg())(torch.ones(1, 17, dtype=torch.long))


def test_same_generator_seed_same_model_different_seed_different():
    a = Transformer(cfg(), torch.Generator().manual_seed(3)).state_dict()
    b = Transformer(cfg(), torch.Generator().manual_seed(3)).state_dict()
    c = Transformer(cfg(), torch.Generator().manual_seed(4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn.q_proj.weight"], c["blocks.0.attn.q_proj.weight"])


@pytest.mark.parametrize("experts", [1, 4])
def test_classifier_last_block_computes_only_what_it_reads(experts):
    """The classifier's last block runs only at the last position; the logits must equal
    those of running every block at every position and reading the last."""
    c = cfg(layers=2, heads=2, experts=experts, top_k=min(2, experts))
    model = Transformer(c, torch.Generator().manual_seed(3)).double()
    tokens = torch.randint(1, 20, (4, 7), generator=torch.Generator().manual_seed(4))
    tokens[:, :2] = 0
    mask = tokens != 0
    allowed = mask[:, None, None, :] | torch.eye(7, dtype=torch.bool)
    h = model.embed(tokens)
    for block in model.blocks:
        h, _ = block(h, allowed, mask)
    want = model.head(model.norm_f(h[:, -1]))
    torch.testing.assert_close(model(tokens), want)


@pytest.mark.parametrize(("experts", "capacity"), [(1, None), (4, None), (4, 1.0)])
@pytest.mark.parametrize("dispatch", ["grouped", "loop"])
@pytest.mark.parametrize("pad", [0, 3])
def test_sync_free_forward_gives_the_same_result(experts, capacity, dispatch, pad):
    top_k = min(2, experts)
    c = cfg(experts=experts, top_k=top_k, capacity_factor=capacity, dispatch=dispatch, layers=2)
    model = Transformer(c).double()
    tokens = torch.randint(1, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    tokens[:, :pad] = 0
    (a, aux_a), (b, aux_b) = model.forward_aux(tokens), model.forward_aux(tokens, sync_free=True)
    torch.testing.assert_close(b, a)
    for x, y in zip(aux_a, aux_b, strict=True):
        assert torch.equal(x.counts, y.counts) and int(x.dropped) == int(y.dropped)
        torch.testing.assert_close(y.balance_loss, x.balance_loss)
        torch.testing.assert_close(y.z_loss, x.z_loss)


@pytest.mark.parametrize(
    ("experts", "capacity", "width"), [(1, None, 16), (4, None, 16), (4, 1.0, 16), (4, 1.0, 12)]
)
def test_sync_free_step_reads_nothing_back(experts, capacity, width):
    # On the meta device a tensor has no data: any host read (``bool``, ``nonzero``,
    # ``tolist``, ``item``) raises, so a forward and backward that run there read nothing,
    # which is what capturing a training step as a CUDA graph needs. Width 12 (24-byte bf16
    # rows) takes the padded grouped_mm path: meta's grouped_mm checks the 16-byte rule too.
    c = cfg(experts=experts, top_k=min(2, experts), capacity_factor=capacity, width=width)
    model = Transformer(c).to("meta", torch.bfloat16)
    tokens = torch.ones(4, 8, dtype=torch.long, device="meta")
    logits, auxes = model.forward_aux(tokens, sync_free=True)
    loss = logits.float().sum() + sum((a.balance_loss + a.z_loss for a in auxes), 0.0)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises((RuntimeError, NotImplementedError)):
        model.forward_aux(tokens)  # the default forward reads whether the batch has PAD
    model.forward_aux(tokens, no_pad=True)  # told there is no PAD: no mask, no read


@pytest.mark.parametrize(("experts", "capacity"), [(1, None), (4, None), (4, 1.0)])
def test_no_pad_forward_is_the_default_forward_of_a_batch_without_pad(experts, capacity):
    c = cfg(experts=experts, top_k=min(2, experts), capacity_factor=capacity, layers=2)
    model = Transformer(c).double()
    tokens = torch.randint(1, 20, (3, 8), generator=torch.Generator().manual_seed(1))
    (a, aux_a), (b, aux_b) = model.forward_aux(tokens), model.forward_aux(tokens, no_pad=True)
    assert torch.equal(a, b)  # the same path: no mask either way
    for x, y in zip(aux_a, aux_b, strict=True):
        assert torch.equal(x.counts, y.counts) and torch.equal(x.balance_loss, y.balance_loss)
    tokens[:, :2] = 0  # with PAD the promise is broken, and the result is not the masked one
    assert not torch.allclose(model.forward_aux(tokens, no_pad=True)[0], model(tokens))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("experts", "capacity"), [(1, None), (4, None), (4, 1.0)])
@pytest.mark.parametrize("no_pad", [False, True])
@pytest.mark.filterwarnings("ignore:Synchronization debug mode is a prototype:UserWarning")
def test_sync_free_step_reads_nothing_back_on_a_gpu(experts, capacity, no_pad):
    # CUDA's sync debug mode raises at any host read: what a capture would trip on, named
    from models.train import graph_blocker

    c = cfg(experts=experts, top_k=min(2, experts), capacity_factor=capacity, width=16)
    if (reason := graph_blocker(c, torch.device("cuda"))) is not None:
        pytest.skip(reason)
    model = Transformer(c).cuda()
    tokens = torch.randint(1, 20, (64, 8), device="cuda")
    torch.cuda.synchronize()
    try:  # setting the mode warns (a prototype) after it takes effect: reset it whatever happens
        torch.cuda.set_sync_debug_mode("error")
        with torch.autocast("cuda", torch.bfloat16):
            logits, auxes = model.forward_aux(tokens, sync_free=True, no_pad=no_pad)
        loss = logits.float().sum() + sum((a.balance_loss + a.z_loss for a in auxes), 0.0)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(p.grad is not None for p in model.parameters())
