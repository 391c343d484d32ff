"""The closed-form parameter counts of theory.bounds equal what the torch modules hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.transformer import ModelConfig, Transformer
from theory.bounds import param_counts


@st.composite
def model_configs(draw) -> ModelConfig:
    """Tiny random configs over every field that changes a parameter count."""
    heads = draw(st.integers(1, 3))
    width = heads * draw(st.integers(1, 3))
    vocab = draw(st.integers(2, 24))
    experts = draw(st.integers(1, 4))
    head = draw(st.sampled_from(("classify", "next_token")))
    blocks: list[tuple[int, int, int]] = []
    start = 1  # the pad token (0) stays outside every block
    for _ in range(draw(st.integers(0, 2))):
        if start >= vocab:
            break
        first = draw(st.integers(start, vocab - 1))
        rows = draw(st.integers(1, 3))
        cols = draw(st.integers(1, 3))
        if first + rows * cols > vocab:
            break
        blocks.append((first, rows, cols))
        start = first + rows * cols
    return ModelConfig(
        vocab_size=vocab,
        max_len=draw(st.integers(1, 6)),
        width=width,
        heads=heads,
        layers=draw(st.integers(1, 2)),
        mlp_hidden=draw(st.one_of(st.none(), st.integers(1, 6))),
        experts=experts,
        top_k=draw(st.integers(1, experts)),
        norm=draw(st.sampled_from(("none", "layer", "rms"))),
        bias=draw(st.booleans()),
        pos_emb=draw(st.sampled_from(("none", "learned", "sinusoidal"))),
        tie_embeddings=head == "next_token" and draw(st.booleans()),
        head=head,
        num_classes=draw(st.integers(1, 5)) if head == "classify" else None,
        pair_blocks=tuple(blocks),
    )


@settings(max_examples=60)
@given(model_configs())
def test_closed_form_total_and_active_equal_the_torch_module(cfg):
    model = Transformer(cfg)
    counts = param_counts(cfg.to_dict())
    held = sum(p.numel() for p in model.parameters())
    assert counts["total"] == held == model.total_params()
    assert counts["active"] == model.active_params()
    # the model's own closed form agrees too (it is another engineer's; this pins it)
    assert cfg.num_params() == counts


def test_active_counts_exactly_k_of_k_experts_by_hand():
    # width 4, d 8, K 4, k 2, no bias, no norm, 10 tokens, 3 classes, one layer:
    # embedding 40, attention 64, experts 4 * 64, router 16, head 12
    cfg = ModelConfig(
        vocab_size=10,
        max_len=4,
        width=4,
        mlp_hidden=8,
        experts=4,
        top_k=2,
        norm="none",
        bias=False,
        num_classes=3,
    )
    assert param_counts(cfg.to_dict()) == {
        "total": 40 + 64 + 256 + 16 + 12,
        "active": 40 + 64 + 128 + 16 + 12,
    }
    model = Transformer(cfg)
    assert (model.total_params(), model.active_params()) == (388, 260)
