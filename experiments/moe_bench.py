"""The MoE layer benchmark behind ``parrots bench moe`` (kept apart so the CLI starts without
torch). Forward+backward tokens/s of the MoE layer: grouped dispatch vs dense vs loop vs naive.

For each (width, K, k) it times, in one run on the same input, one training step
(forward, backward of a random linear functional of the output) of

* ``grouped``: ``models.transformer.MoEMLP`` with ``dispatch="grouped"`` (the fast path);
* ``loop``: the same layer with ``dispatch="loop"`` (the reference);
* ``naive``: a 20-line sort-by-expert version (argsort, gather, two ``torch._grouped_mm``,
  ``index_add``) as the floor the fast path must not fall below;
* ``dense``: a dense MLP with hidden size k·d_ff, i.e. the same active compute as each
  token passing through k expert-sized MLPs (the router excepted).

Each row also counts the operations that do work in one grouped and one naive step
(``count_kernels``: on a GPU, kernel launches, which set the time of a launch-bound step).
Ratios are tokens/s of ``grouped`` over the others. Defaults: 65,536 tokens, d_ff = 4·width,
bf16 on CUDA and fp32 on CPU (``--dtype`` to override), the five shapes of issue 7.

``--cuda-graph`` also times the grouped and the dense step each captured as one CUDA graph
(forward and the gradients of the input and every weight), replayed: what they cost inside a
graphed training step, where kernel launches no longer count (``graph_grouped_over_dense``).
The loop and naive variants read counts back to the host and cannot be captured. A shape
whose grouped path cannot be captured (``models.train.graph_blocker``: not bf16, no sm90/sm100
kernels), or whose capture fails, keeps its eager timings and
says why under ``graph_skipped``.

``--compile`` also times the grouped and the dense step with the layer's forward compiled by
``torch.compile(fullgraph=True, dynamic=False)`` (the backward by AOTAutograd): on a GPU,
Inductor fuses the routing's and the permutations' elementwise and reduction kernels, the
device time that separates the grouped step from the dense one (README, "MoE layer
benchmark"). It reports ``compiled_grouped_over_dense`` (both compiled), the compiled grouped
step against the eager naive one, the compiled output's error against the loop reference,
and the seconds the first compiled grouped step took (``compile_s``). With ``--cuda-graph``
the compiled steps are also captured (``graph_compiled_grouped_over_dense``). Each shape
starts from an empty compile cache (``torch._dynamo.reset``: Dynamo keeps at most 8 graphs
per function, and with ``fullgraph`` a ninth is an error). A shape that is not bf16 (the
tracer runs ``torch._grouped_mm``'s shape function, which wants bf16) or that fails to
compile keeps its other timings and says why under ``compile_skipped``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from experiments.benchmarks.moe import SHAPES
from models.train import compiled, graph_blocker
from models.transformer import ModelConfig, MoEMLP
from theory.errors import InputError


def naive_moe(x: Tensor, router: Tensor, w1: Tensor, w2: Tensor, k: int) -> Tensor:
    """The naive baseline: softmax-top-k routing, argsort, gather, 2 grouped_mm, index_add."""
    probs = (x @ router.T).float().softmax(-1)
    weights, experts = probs.topk(k, dim=-1)
    flat = experts.reshape(-1)
    order = torch.argsort(flat)
    tok = order // k
    offs = torch.cumsum(torch.bincount(flat, minlength=w1.shape[0]), 0).int()
    h = F.gelu(torch._grouped_mm(x[tok], w1.transpose(-2, -1), offs=offs))
    y = torch._grouped_mm(h, w2.transpose(-2, -1), offs=offs)
    y = y * weights.reshape(-1)[order, None].to(y.dtype)
    return torch.zeros_like(x).index_add_(0, tok, y)


def count_kernels(step: Callable[[], None]) -> int:
    """Operations one call of ``step`` dispatches that do work, views and aliases left out:
    on a GPU each is at least one kernel launch, so in a launch-bound step this count, not
    the arithmetic, sets the time. Counted at dispatch: the same dtype and dispatch path give
    the same number on any device (bf16 adds casts; the segment loop is another path)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and func.overloadpacket.__name__ not in _NO_WORK:
                self.n += 1
            return func(*args, **(kwargs or {}))

    with _Count() as counter:
        step()
    return counter.n


# aliasing or allocation only: no kernel runs for them
_NO_WORK = frozenset({"detach", "empty", "empty_like", "t", "lift_fresh", "alias", "_unsafe_view"})


def _time(step: Callable[[], None], repeats: int, warmup: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def _captured(grads: Callable[[], object]) -> Callable[[], None]:
    """``grads`` (a forward and ``torch.autograd.grad``) captured as one CUDA graph, after
    warm-up on a side stream as capture requires; returns the replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            grads()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        grads()
    return graph.replay


def _compiled_times(
    layer: MoEMLP,
    x: Tensor,
    probe: Tensor,
    dense_weights: tuple[Tensor, Tensor],
    ref: Tensor,
    args: argparse.Namespace,
    capture: bool,
) -> dict[str, Any]:
    """Compile the grouped layer and the dense MLP (weights ``dense_weights``), check the
    compiled output against the loop reference ``ref``, and time both steps (``times``; with
    ``capture``, also each captured as a CUDA graph). If compiling fails, ``compile_skipped``
    says why and nothing is timed."""
    device = x.device
    dense1, dense2 = dense_weights
    layer.dispatch = "grouped"
    torch._dynamo.reset()  # every shape compiles afresh: no cache limit across shapes
    fast = compiled(layer)

    def mlp(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return F.linear(F.gelu(F.linear(x, a)), b)

    dense = compiled(mlp)

    def moe_step() -> None:
        (fast(x)[0] * probe).sum().backward()
        layer.zero_grad(set_to_none=True)
        x.grad = None

    def dense_step() -> None:
        (dense(x, dense1, dense2) * probe).sum().backward()
        dense1.grad = dense2.grad = x.grad = None

    out: dict[str, Any] = {}
    if x.dtype != torch.bfloat16:  # checked here: the tracer's failure is a long traceback
        out["compile_skipped"] = (
            "torch.compile traces torch._grouped_mm by its CUDA shape rules, which want BF16 "
            "(use --dtype bf16)"
        )
        return out
    try:
        start = time.perf_counter()
        moe_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out["compile_s"] = round(time.perf_counter() - start, 2)
        dense_step()  # compiled here, not inside its timing (which may have no warm-up)
        # the graph that is timed (grad mode is part of what a compiled graph is for)
        y = fast(x)[0].detach().float()
        out["compiled_vs_loop_rel_err"] = float(f"{float((y - ref).norm() / ref.norm()):.3g}")
        out["times"] = {
            "compiled_grouped": _time(moe_step, args.repeats, args.warmup, device),
            "compiled_dense": _time(dense_step, args.repeats, args.warmup, device),
        }
    except Exception as err:  # any compiler failure: report it, keep the row's other timings
        out.pop("times", None)
        out["compile_skipped"] = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        return out
    if capture:

        def moe_grads() -> object:
            wrt = [x, *layer.parameters()]
            return torch.autograd.grad((fast(x)[0] * probe).sum(), wrt)

        def dense_grads() -> object:
            y = dense(x, dense1, dense2)
            return torch.autograd.grad((y * probe).sum(), [x, dense1, dense2])

        try:
            out["times"]["graph_compiled_grouped"] = _time(
                _captured(moe_grads), args.repeats, 1, device
            )
            out["times"]["graph_compiled_dense"] = _time(
                _captured(dense_grads), args.repeats, 1, device
            )
        except RuntimeError as err:
            out["graph_compiled_skipped"] = f"capture failed: {err}".splitlines()[0][:300]
    return out


def _profile(steps: dict[str, Callable[[], None]], shape: tuple[int, int, int]) -> None:
    """Print where each variant's step spends device (or CPU) time: torch.profiler's table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    for name, step in steps.items():
        step()
        with profile(activities=activities) as prof:
            for _ in range(3):
                step()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        print(f"== {name} {shape}: 3 steps")
        print(prof.key_averages().table(sort_by=sort, row_limit=18, max_name_column_width=60))


def _parse_shapes(text: str | None) -> tuple[tuple[int, int, int], ...]:
    if not text:
        return SHAPES
    try:
        shapes = tuple(tuple(int(v) for v in part.split(":")) for part in text.split(","))
    except ValueError as err:
        raise InputError(f"--shapes must look like 256:16:2,1024:64:2, got {text!r}") from err
    if any(len(s) != 3 for s in shapes):
        raise InputError(f"--shapes must look like 256:16:2,1024:64:2, got {text!r}")
    return shapes  # type: ignore[return-value]


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.tokens < 1 or args.repeats < 1:
        raise InputError("--tokens and --repeats must be positive")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA device is available")
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    graphs = getattr(args, "cuda_graph", False)
    if graphs and device.type != "cuda":
        raise InputError("--cuda-graph needs a CUDA device")
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[dtype_name]
    g = torch.Generator().manual_seed(0)
    rows = []
    for width, K, k in _parse_shapes(args.shapes):
        hidden = args.hidden_mult * width
        cfg = ModelConfig(
            vocab_size=2,
            max_len=1,
            width=width,
            mlp_hidden=hidden,
            experts=K,
            top_k=k,
            bias=False,
            dispatch="grouped",
        )
        layer = MoEMLP(cfg)
        with torch.no_grad():
            layer.router.weight.normal_(0, width**-0.5, generator=g)
            layer.w1.normal_(0, width**-0.5, generator=g)
            layer.w2.normal_(0, hidden**-0.5, generator=g)
        layer = layer.to(device, dtype)
        x = torch.randn(args.tokens, width, generator=g).to(device, dtype).requires_grad_()
        probe = torch.randn(args.tokens, width, generator=g).to(device, dtype)
        dense1 = torch.randn(k * hidden, width, generator=g).to(device, dtype) * width**-0.5
        dense2 = torch.randn(width, k * hidden, generator=g).to(device, dtype) * hidden**-0.5
        dense1.requires_grad_()
        dense2.requires_grad_()

        def moe_step(
            dispatch: str, layer: MoEMLP = layer, x: Tensor = x, probe: Tensor = probe
        ) -> Callable[[], None]:
            def step() -> None:
                layer.dispatch = dispatch
                y, _ = layer(x)
                (y * probe).sum().backward()
                layer.zero_grad(set_to_none=True)
                x.grad = None

            return step

        def dense_step(
            x: Tensor = x, probe: Tensor = probe, a: Tensor = dense1, b: Tensor = dense2
        ) -> None:
            y = F.linear(F.gelu(F.linear(x, a)), b)
            (y * probe).sum().backward()
            a.grad = b.grad = x.grad = None

        def naive_step(layer: MoEMLP = layer, x: Tensor = x, probe: Tensor = probe) -> None:
            y = naive_moe(x, layer.router.weight, layer.w1, layer.w2, layer.top_k)
            (y * probe).sum().backward()
            layer.zero_grad(set_to_none=True)
            x.grad = None

        # correctness on the device first: grouped vs loop, output and input gradient
        errors = {}
        with torch.no_grad():
            layer.dispatch = "loop"
            ref = layer(x)[0].float()
            layer.dispatch = "grouped"
            fast = layer(x)[0].float()
        errors["grouped_vs_loop_rel_err"] = float((fast - ref).norm() / ref.norm())
        kernels = {"grouped_kernels": count_kernels(moe_step("grouped"))}
        try:
            kernels["naive_kernels"] = count_kernels(naive_step)
        except (RuntimeError, AttributeError):
            pass
        if getattr(args, "profile", False):
            _profile({"grouped": moe_step("grouped"), "naive": naive_step}, (width, K, k))
        times = {
            "grouped": _time(moe_step("grouped"), args.repeats, args.warmup, device),
            "dense": _time(dense_step, args.repeats, args.warmup, device),
        }
        try:
            times["naive"] = _time(naive_step, args.repeats, args.warmup, device)
        except (RuntimeError, AttributeError):  # no grouped_mm for this device/dtype/shape
            pass
        if not args.skip_loop:
            times["loop"] = _time(moe_step("loop"), max(1, args.repeats // 2), 1, device)
        if graphs:

            def moe_grads(layer: MoEMLP = layer, x: Tensor = x, probe: Tensor = probe) -> object:
                layer.dispatch = "grouped"
                wrt = [x, *layer.parameters()]
                return torch.autograd.grad((layer(x)[0] * probe).sum(), wrt)

            def dense_grads(
                x: Tensor = x, probe: Tensor = probe, a: Tensor = dense1, b: Tensor = dense2
            ) -> object:
                y = F.linear(F.gelu(F.linear(x, a)), b)
                return torch.autograd.grad((y * probe).sum(), [x, a, b])

            # a shape whose grouped path would read the offsets back cannot be captured
            blocked = (
                graph_blocker(cfg, device)
                if dtype == torch.bfloat16
                else f"--dtype {dtype_name}: torch._grouped_mm's CUDA kernels are bf16"
            )
            if blocked is None:
                try:
                    times["graph_grouped"] = _time(_captured(moe_grads), args.repeats, 1, device)
                    times["graph_dense"] = _time(_captured(dense_grads), args.repeats, 1, device)
                except RuntimeError as err:  # keep the eager timings of every shape
                    blocked = f"capture failed: {err}".splitlines()[0][:300]
                    times.pop("graph_grouped", None)
        compile_row: dict[str, Any] = {}
        if getattr(args, "compile", False):
            capture = graphs and blocked is None
            compile_row = _compiled_times(layer, x, probe, (dense1, dense2), ref, args, capture)
            times.update(compile_row.pop("times", {}))
        row: dict[str, Any] = {"width": width, "experts": K, "top_k": k, "hidden": hidden}
        if graphs and blocked is not None:
            row["graph_skipped"] = blocked
        row.update(compile_row)
        row.update({name: float(f"{v:.3g}") for name, v in errors.items()})
        row.update(kernels)
        for name, seconds in times.items():
            row[f"{name}_tokens_per_s"] = round(args.tokens / seconds)
        for other in ("dense", "loop", "naive"):
            if other in times:
                row[f"grouped_over_{other}"] = round(times[other] / times["grouped"], 3)
        pairs = {
            "graph_grouped_over_dense": ("graph_grouped", "graph_dense"),
            "compiled_grouped_over_dense": ("compiled_grouped", "compiled_dense"),
            "compiled_grouped_over_naive": ("compiled_grouped", "naive"),
            "graph_compiled_grouped_over_dense": ("graph_compiled_grouped", "graph_compiled_dense"),
            "graph_compiled_grouped_over_naive": ("graph_compiled_grouped", "naive"),
        }
        for key, (mine, other) in pairs.items():
            if mine in times and other in times:
                row[key] = round(times[other] / times[mine], 3)
        rows.append(row)
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "benchmark": "moe",
        "device": device_name,
        "dtype": dtype_name,
        "tokens": args.tokens,
        "threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cuda": torch.version.cuda,
        },
        "rows": rows,
    }
