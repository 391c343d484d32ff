"""The trainer: AdamW with warm-up + cosine, held-out evaluation, JSON-lines metrics,
resumable safetensors checkpoints and a NaN/inf guard. It knows nothing of graphs: a task is
a function ``sample(rng, batch) -> (tokens, labels)`` and a held-out ``(tokens, labels)``.

Files written to ``out_dir`` (all optional):

``metrics.jsonl``           one JSON object per logged step (``"kind": "train"`` or ``"eval"``)
``checkpoint.safetensors``  model weights (``model.<name>``), AdamW state (``optim.<name>.*``)
                            and the trainer state (step, data RNG, best accuracy) as JSON in
                            the safetensors metadata; written to a temporary file and renamed,
                            so the file on disk is always the last *good* checkpoint
``config.json``             the model and train configs

Never pickle: checkpoints hold tensors and JSON only.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import queue
import threading
import time
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm import tqdm

from models.capture_gate import GATE
from models.transformer import ModelConfig, MoEAux, Transformer, grouped_mm_runs
from theory.errors import InputError

Sampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
IGNORE = -100  # label value ignored by the loss and the accuracy (next-token padding)
CHECKPOINT, CONFIG, METRICS = "checkpoint.safetensors", "config.json", "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Frozen, validated, JSON round-trip; carries its seed."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # the cosine ends at lr · min_lr_ratio
    weight_decay: float = 0.01  # on matrices of attention/MLP/head, not embeddings or vectors
    grad_clip: float | None = 1.0
    balance_weight: float = 0.01  # × Σ_layers MoEAux.balance_loss
    z_weight: float = 1e-3  # × Σ_layers MoEAux.z_loss
    eval_interval: int = 250
    log_interval: int = 50
    eval_batch_size: int = 1024
    target_accuracy: float | None = None  # stop early once held-out accuracy reaches it
    seed: int = 0
    device: str = "auto"
    cuda_graph: bool = False  # replay forward and backward as CUDA graphs (see ``train``)
    compile: bool = False  # forward (and backward) compiled by torch.compile (see ``train``)
    guard_interval: int = 1  # steps between the guard's device->host reads (see ``train``)

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise InputError(f"TrainConfig: {msg}")

        for name in (
            "steps",
            "batch_size",
            "eval_interval",
            "log_interval",
            "eval_batch_size",
            "guard_interval",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            bad(f"lr must be a positive number, got {self.lr!r}")
        if self.warmup_steps < 0:
            bad(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            bad(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.weight_decay < 0 or self.balance_weight < 0 or self.z_weight < 0:
            bad("weight_decay, balance_weight and z_weight must be >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            bad(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            bad(f"target_accuracy must be in (0, 1], got {self.target_accuracy!r}")
        if self.seed < 0:
            bad(f"seed must be >= 0, got {self.seed!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            bad("device='cuda' but no CUDA device is available")
        if self.cuda_graph and self.resolved_device().type != "cuda":
            bad("cuda_graph needs a CUDA device, and this run would train on the CPU")
        for name in ("cuda_graph", "compile"):
            if not isinstance(getattr(self, name), bool):
                bad(f"{name} must be True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"TrainConfig: unknown fields {sorted(unknown)}")
        return cls(**d)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup_steps``, then cosine from lr to lr · min_lr_ratio."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        floor = self.lr * self.min_lr_ratio
        return floor + (self.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# -- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: Transformer,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Model weights (+ AdamW state, + JSON trainer state) in one safetensors file, written
    to a temporary name and renamed, so a crash never leaves a torn checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                for key, value in optimizer.state.get(p, {}).items():
                    t = value if torch.is_tensor(value) else torch.tensor(value)
                    tensors[f"optim.{names[id(p)]}.{key}"] = t.detach().contiguous().cpu()
    meta = {"model_config": model.cfg.to_json(), "state": json.dumps(state or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | Path,
    optimizer_model: tuple[torch.optim.Optimizer, Transformer] | None = None,
) -> tuple[Transformer, dict[str, Any]]:
    """A model rebuilt from a checkpoint (config from its metadata) and the trainer state.

    With ``optimizer_model``, the AdamW state is loaded into that optimizer (whose params
    are those of that model) and the weights into that model, which is returned.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        cfg = ModelConfig.from_dict(json.loads(meta["model_config"]))
        state = json.loads(meta.get("state", "{}"))
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a checkpoint of this toolkit ({err})") from err
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if optimizer_model is None:
        model = Transformer(cfg)
    else:
        optimizer, model = optimizer_model
        if model.cfg != cfg:
            raise InputError(f"{path}: checkpoint config differs from the model being resumed")
    model.load_state_dict(weights)
    if optimizer_model is not None:
        params = dict(model.named_parameters())
        for key, value in tensors.items():
            if key.startswith("optim."):
                name, field = key[len("optim.") :].rsplit(".", 1)
                p = params[name]
                # AdamW keeps its step count on the CPU unless capturable/fused
                on_device = field != "step" or any(
                    optimizer.defaults.get(flag) for flag in ("fused", "capturable")
                )
                optimizer.state[p][field] = value.to(p.device) if on_device else value
    return model, state


# -- training ------------------------------------------------------------------------------


def _optimizer(model: Transformer, cfg: TrainConfig) -> torch.optim.AdamW:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        is_matrix = p.ndim >= 2 and not name.startswith(("embed.", "pos."))
        (decay if is_matrix else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # with graphs replaying forward and backward, the eager update is most of what is left to
    # launch: the fused AdamW is one kernel where the default is one per tensor list and op
    fused = True if cfg.cuda_graph else None
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=fused)


class _ForwardAux(torch.nn.Module):
    """``model.forward_aux(x, sync_free=True, no_pad=...)`` as a module of its own: what
    ``torch.cuda.make_graphed_callables`` captures (a module, so that its parameters are part
    of the graph's input surface and receive gradients) and what ``torch.compile`` compiles.

    ``own_code``: give this instance's ``forward`` a code object of its own. Dynamo caches
    compiled graphs per code object, at most ``recompile_limit`` (8) of them, and with
    ``fullgraph`` one more is an error: a sweep worker that compiled 8 model shapes through
    one shared ``forward`` would fail its 9th run. With its own code object, a run's compiled
    graphs live and die with the run."""

    def __init__(self, model: Transformer, no_pad: bool, own_code: bool = False) -> None:
        super().__init__()
        self.model = model
        self.no_pad = no_pad
        if own_code:
            f = type(self).forward
            code = f.__code__.replace(co_name=f"forward_{next(_OWN_CODE)}")
            fresh = types.FunctionType(code, f.__globals__, code.co_name, f.__defaults__)
            self.forward = types.MethodType(fresh, self)  # type: ignore[method-assign]

    def forward(self, tokens: Tensor) -> tuple[Tensor, list[MoEAux]]:
        return self.model.forward_aux(tokens, sync_free=True, no_pad=self.no_pad)


def graph_blocker(cfg: ModelConfig, device: torch.device) -> str | None:
    """Why a training step of this model cannot be captured as a CUDA graph on ``device``, or
    None. A dense model always can. An MoE needs the grouped dispatch (the loop reference
    reads its counts back) running on ``torch._grouped_mm``'s own kernels: bf16 on sm90 or
    sm100, any width (rows padded to 16 bytes). Elsewhere the segment loop, or torch's
    fallback, reads the offsets."""
    if device.type not in ("cuda", "meta"):  # meta: shapes only, stands for a GPU in tests
        return f"CUDA graphs need a CUDA device, not {device.type}"
    if cfg.experts == 1:
        return None
    if cfg.dispatch != "grouped":
        return "the MoE's loop dispatch reads its counts back to the host; use dispatch='grouped'"
    if not grouped_mm_runs(device, torch.bfloat16):
        return "torch._grouped_mm does not run here in bf16 (it needs a CUDA sm90+ GPU)"
    major = torch.cuda.get_device_capability(device)[0] if device.type == "cuda" else 9
    if major not in (9, 10):
        return f"torch._grouped_mm on sm{major}x falls back to a loop that reads the offsets"
    return None


def compile_blocker(cfg: ModelConfig, device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot compile this model's forward as one graph on ``device``,
    or None. A dense model always can. An MoE needs what a CUDA graph needs (the grouped
    dispatch on ``torch._grouped_mm``, :func:`graph_blocker`): the loop and the segment loop
    read counts back to the host, a break in the graph. On a CPU the model trains in fp32,
    and the tracer runs ``torch._grouped_mm``'s shape function, which wants bf16."""
    if cfg.experts == 1:
        return None
    if device.type == "cpu":
        return "an MoE compiles on a GPU only (it trains in fp32 on a CPU; grouped_mm wants bf16)"
    return graph_blocker(cfg, device)


def compiled(fn: Any) -> Any:
    """``fn`` (a module or a function) compiled as one graph (``fullgraph``: a break raises
    instead of silently running eager pieces), specialised to the shapes it sees
    (``dynamic=False``). The one set of compile settings: the trainer's and the MoE bench's."""
    return torch.compile(fn, fullgraph=True, dynamic=False)


def _graphed_forward(
    model: Transformer, example: Tensor, compile: bool = False
) -> tuple[Callable[[Tensor], tuple[Tensor, list[MoEAux]]], bool]:
    """``model.forward_aux`` with its forward and its backward each replayed as one CUDA
    graph: a small model's step is hundreds of kernel launches, so on a GPU its time is the
    launches', not the arithmetic's (research/probes.md); a replay is one launch each way.
    Captured in bf16 autocast (with the weight-cast cache off, as capture requires) on the
    shape of ``example``; every later batch must have that shape. The model reads nothing
    back to the host in ``sync_free`` mode (tests/models: it runs on the meta device), which
    is what capture needs (:func:`graph_blocker` says when an MoE would not). The loss, the
    gradient clip and AdamW stay eager.

    Returns the graphed callable and ``no_pad``: whether ``example`` held no PAD token. Then
    the graph is captured without the PAD mask, so attention keeps its fused mask-free
    kernels (fixed-length tasks, the common case), and it is exact only for batches without
    PAD: the trainer checks each batch in its one read per step. A batch with PAD (a
    curriculum's shorter graphs) captures the masked path, right for every batch. With
    ``compile``, the module captured is the compiled one (:func:`compiled`)."""
    no_pad = _no_pad(model, example)  # read before capture begins
    module = _ForwardAux(model, no_pad, own_code=compile)
    with torch.autocast("cuda", torch.bfloat16, cache_enabled=False):
        graphed = torch.cuda.make_graphed_callables(
            compiled(module) if compile else module, (example,)
        )
    return graphed, no_pad  # type: ignore[return-value]


def _no_pad(model: Transformer, example: Tensor) -> bool:
    pad = model.cfg.pad_token
    return pad is None or not bool((example == pad).any())


_OWN_CODE = itertools.count()  # names the code objects of _ForwardAux(own_code=True)


class _StreamWarningOff:
    """Reference-counted :func:`_accumulate_grad_stream_warning` off: several graphed runs
    on threads of one process share the flag, so the first one in turns it off and the last
    one out restores what it was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._before: bool | None = None

    def enter(self) -> None:
        with self._lock:
            if self._count == 0:
                self._before = _accumulate_grad_stream_warning(False)
            self._count += 1

    def exit(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0 and self._before is not None:
                _accumulate_grad_stream_warning(self._before)


_STREAM_WARNING_OFF = _StreamWarningOff()


def _accumulate_grad_stream_warning(enabled: bool) -> bool | None:
    """Turn PyTorch's AccumulateGrad stream-mismatch warning on or off; return its previous
    state (None where this torch has no such warning, before 2.10).

    Why a graphed run turns it off: ``make_graphed_callables`` warms up and captures on a side
    stream, so each parameter's AccumulateGrad node is made there, and the captured graph's
    static outputs keep those nodes alive. The replayed backward then runs on the caller's
    current stream, and the engine joins the two streams with an event per parameter (correct
    gradients, a few microseconds a step) and warns on every step. Seen on an H100 with torch
    2.11, in the capture's own warm-up backward and in the first replayed one (an error under
    this project's pytest settings)."""
    setter = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if setter is None:
        return None
    getter = getattr(torch._C, "_warn_on_accumulate_grad_stream_mismatch", None)
    before = True if getter is None else bool(getter())  # on by default where it exists
    setter(enabled)
    return before


def _loss_and_correct(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy (mean over counted labels), number correct, number counted."""
    logits = logits.float().reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    counted = labels != IGNORE
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    correct = ((logits.argmax(-1) == labels) & counted).sum()
    return loss, correct, counted.sum()


@torch.no_grad()
def evaluate(
    model: Transformer,
    tokens: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 1024,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Held-out accuracy and loss (fp32 on CPU, bf16 autocast on CUDA)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct, counted = 0.0, 0, 0
    for i in range(0, len(tokens), batch_size):
        x = torch.as_tensor(tokens[i : i + batch_size], device=device)
        y = torch.as_tensor(labels[i : i + batch_size], device=device)
        with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        loss, c, n = _loss_and_correct(logits, y)
        total_loss += float(loss) * int(n)
        correct, counted = correct + int(c), counted + int(n)
    model.train(was_training)
    return {"accuracy": correct / max(1, counted), "loss": total_loss / max(1, counted)}


class _Prefetch:
    """Draws the coming batches on a background thread while the device works on this one.

    Batches come in step order from the trainer's one generator, so a run sees the same
    batches with or without prefetching; each carries the generator state after its draw,
    which is what a checkpoint at that step must store for an exact resume.
    """

    def __init__(
        self, sample: Sampler, rng: np.random.Generator, batch: int, steps: range, depth: int = 3
    ) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        set_step = getattr(sample, "set_step", None)

        def produce() -> None:
            try:
                for step in steps:
                    if set_step is not None:
                        set_step(step)
                    item: Any = (*sample(rng, batch), dict(rng.bit_generator.state))
                    while not self._stop.is_set():
                        try:
                            self._queue.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
            except BaseException as err:  # handed to the trainer, raised there
                self._queue.put(err)

        self._thread = threading.Thread(target=produce, daemon=True, name="prefetch")
        self._thread.start()

    def next(self) -> tuple[np.ndarray, np.ndarray, dict]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def train(
    model: Transformer,
    cfg: TrainConfig,
    sample: Sampler,
    held_out: tuple[np.ndarray, np.ndarray],
    out_dir: str | Path | None = None,
    progress: bool = True,
    resume: bool = True,
    prefetch: bool = False,
) -> dict[str, Any]:
    """Train ``model`` in place and return a summary dict.

    ``sample(rng, batch)`` draws a fresh batch (tokens int64 (B, N), labels (B,) or (B, N))
    from the numpy generator the trainer seeds with ``cfg.seed`` and checkpoints. A sampler
    with a ``set_step(step)`` method (a curriculum) is told the step before each draw. If
    ``out_dir`` holds a checkpoint and ``resume`` is set, training continues from it exactly
    (same weights, optimiser state, schedule position and data stream).
    Raises :class:`TrainingDiverged` on a NaN/inf loss or gradient, without overwriting the
    last good checkpoint. ``prefetch`` draws batches on a background thread while the device
    works; it changes no result. Off by default: a sweep runs many trainings at once, the
    CPU is then the bottleneck, and an extra busy thread per run only adds contention.
    ``cfg.cuda_graph`` replays the model's forward and backward as CUDA graphs captured on
    the first batch (:func:`_graphed_forward`); every batch must then have its shape.
    ``cfg.compile`` compiles the forward (AOTAutograd the backward) with ``torch.compile``
    on the first batch's shape, PAD mode chosen as for a graph (with both, the compiled
    forward is what is captured); evaluation stays eager.

    The guard (a non-finite loss or gradient norm, and a PAD batch fed to a graph captured
    without the mask) needs values from the device, and each read stalls the host until the
    device has caught up. ``cfg.guard_interval`` = n reads them once every n steps (and
    before every log row, evaluation and checkpoint), checking each step's values in order:
    with n = 1 a bad step stops the run before its update; with n > 1 up to n - 1 updates
    after it have been applied when the run stops, but no checkpoint ever holds them (the
    last good one is kept) and the error names the first bad step. A run that stays finite
    computes exactly the same with any n; a larger n only lets the host queue steps ahead.
    Several trainings may run at once on threads of one process (each on its own CUDA
    stream): they share :data:`models.capture_gate.GATE`, so that none works on the device
    while another captures. A caller that runs trainings on threads must hold the gate
    around its own device work outside this function too (a ``DeviceSampler``'s set-up, as
    ``experiments.thread_workers`` does for a whole run), and must not use ``prefetch``,
    whose thread would draw outside the gate.
    """
    with GATE.hold():
        try:
            return _train(model, cfg, sample, held_out, out_dir, progress, resume, prefetch)
        finally:
            if cfg.cuda_graph:
                # make_graphed_callables' autograd Function sits in a reference cycle with
                # the graphs, their memory pool and the parameters. With _train's frame gone
                # (on success; a raised error's traceback keeps it) the cycle is garbage:
                # collect it now, while this run holds the gate and no other can be
                # capturing, not in whichever thread next triggers a collection
                gc.collect()


def _guard(
    bad: int,
    now: int,
    loss_value: float,
    norm_value: float,
    has_pad: list[float],
    cfg: TrainConfig,
    out: Path | None,
) -> Exception | None:
    """The error that stops a run whose step ``bad`` is bad, found at step ``now`` (the
    guard reads every ``cfg.guard_interval`` steps), or None if step ``bad`` is fine."""
    if now == bad:
        when = "stopped before the update"
    else:
        when = (
            f"found at step {now} (the guard reads every {cfg.guard_interval} steps), after "
            f"the updates of steps {bad}-{now - 1}"
        )
    kept = f"Last good checkpoint kept at {out / CHECKPOINT}" if out else ""
    if has_pad and has_pad[0]:
        how = "cuda_graph" if cfg.cuda_graph else "compile"
        made = "graph was captured" if cfg.cuda_graph else "forward was compiled"
        return InputError(
            f"{how}: the {made} on a batch without PAD (no mask), and step {bad}'s batch has "
            f"PAD; {when}. Run without {how}, or with a sampler whose first batch has PAD when "
            f"later ones do. {kept}".rstrip()
        )
    if not math.isfinite(loss_value):
        return TrainingDiverged(f"non-finite loss ({loss_value}) at step {bad}; {when}. {kept}")
    if not math.isfinite(norm_value):
        return TrainingDiverged(f"non-finite gradient norm at step {bad}; {when}. {kept}")
    return None


def _train(
    model: Transformer,
    cfg: TrainConfig,
    sample: Sampler,
    held_out: tuple[np.ndarray, np.ndarray],
    out_dir: str | Path | None,
    progress: bool,
    resume: bool,
    prefetch: bool,
) -> dict[str, Any]:
    if cfg.cuda_graph and prefetch:
        # a prefetch thread drawing on the device would launch work while the main thread
        # captures, which capture forbids
        raise InputError("cuda_graph and prefetch cannot be combined; leave prefetch off")
    device = cfg.resolved_device()
    if cfg.cuda_graph and (reason := graph_blocker(model.cfg, device)) is not None:
        raise InputError(f"cuda_graph: {reason}")
    if cfg.compile and (reason := compile_blocker(model.cfg, device)) is not None:
        raise InputError(f"compile: {reason}")
    model.to(device).train()
    optimizer = _optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    out = Path(out_dir) if out_dir is not None else None
    start_step, best = 0, 0.0
    # training seconds of earlier sittings; None when resumed from a checkpoint that predates
    # keeping them, so the total is reported unknown rather than short
    seconds_before: float | None = 0.0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG).write_text(
            json.dumps({"model": model.cfg.to_dict(), "train": cfg.to_dict()}, indent=2) + "\n"
        )
        if resume and (out / CHECKPOINT).exists():
            _, state = load_checkpoint(out / CHECKPOINT, (optimizer, model))
            start_step, best = int(state["step"]), float(state["best_accuracy"])
            rng.bit_generator.state = state["rng"]
            seconds_before = state.get("seconds")

    def log(row: dict[str, Any]) -> None:
        if out is not None:
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")

    def checkpoint(step: int, rng_state: dict) -> None:
        if out is not None:
            state = {"step": step, "best_accuracy": best, "rng": rng_state}
            if seconds_before is not None:
                state["seconds"] = seconds_before + time.perf_counter() - started
            save_checkpoint(out / CHECKPOINT, model, optimizer, state)

    set_step = getattr(sample, "set_step", None)  # curricula: told the step before each draw
    use_amp = device.type == "cuda"
    graphed: Callable[[Tensor], tuple[Tensor, list[MoEAux]]] | None = None
    pad_check: int | None = None  # a graph assumed no PAD: each batch is checked for this id
    stream_warning_off = False  # turned off for this run's graph, restored on the way out
    started = time.perf_counter()
    tokens_seen, last_eval, stopped_early, step = 0, None, False, start_step
    pending: list[tuple[int, Tensor]] = []  # (step, guard inputs) not yet read back
    bar = tqdm(
        range(start_step, cfg.steps),
        initial=start_step,
        total=cfg.steps,
        disable=not progress,
        desc="train",
        dynamic_ncols=True,
    )
    feed = (
        _Prefetch(sample, rng, cfg.batch_size, range(start_step, cfg.steps)) if prefetch else None
    )
    try:
        for step in bar:
            GATE.pause()  # a safe point: another run's waiting capture goes first
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
            if feed is not None:
                x_np, y_np, rng_state = feed.next()
            else:
                if set_step is not None:
                    set_step(step)
                x_np, y_np = sample(rng, cfg.batch_size)
                rng_state = dict(rng.bit_generator.state)
            x = torch.as_tensor(x_np, device=device)
            y = torch.as_tensor(y_np, device=device)
            if cfg.cuda_graph and graphed is None:
                _STREAM_WARNING_OFF.enter()  # the capture's own warm-up warns too
                stream_warning_off = True
                with GATE.capture():  # alone: other runs of this process wait (capture_gate)
                    # on the first batch's shape
                    graphed, no_pad = _graphed_forward(model, x, compile=cfg.compile)
                pad_check = model.cfg.pad_token if no_pad else None
            elif cfg.compile and graphed is None:
                no_pad = _no_pad(model, x)
                graphed = compiled(_ForwardAux(model, no_pad, own_code=True))
                pad_check = model.cfg.pad_token if no_pad else None
            forward = model.forward_aux if graphed is None else graphed
            with torch.autocast("cuda", torch.bfloat16, enabled=use_amp):
                logits, auxes = forward(x)
            task_loss, correct, counted = _loss_and_correct(logits, y)
            balance = sum((a.balance_loss for a in auxes), torch.zeros((), device=device))
            z = sum((a.z_loss for a in auxes), torch.zeros((), device=device))
            loss = task_loss + cfg.balance_weight * balance + cfg.z_weight * z
            # set_to_none matters under graphs: the replayed backward returns its static grad
            # buffers, AccumulateGrad adopts them as .grad when .grad is None, and accumulating
            # into a kept .grad would then add a buffer to itself (pytorch#181723)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            # the guard's inputs, read back once every guard_interval steps (each read stalls
            # the host until the device has caught up): one small row per step
            read = [loss.detach().float(), task_loss.detach().float(), grad_norm.float()]
            if pad_check is not None:
                read.append(torch.eq(x, pad_check).any().float())
            pending.append((step, torch.stack(read)))
            done = step + 1
            if (
                len(pending) >= cfg.guard_interval
                or done % cfg.log_interval == 0
                or done % cfg.eval_interval == 0
                or done == cfg.steps
            ):
                rows = torch.stack([r for _, r in pending]).tolist()  # the one read
                for (s, _), (bad_loss, _, bad_norm, *has_pad) in zip(pending, rows, strict=True):
                    stop = _guard(s, step, bad_loss, bad_norm, has_pad, cfg, out)
                    if stop is not None:
                        bar.close()
                        raise stop
                loss_value, tl, norm_value = rows[-1][:3]  # this step's: a log row's values
                pending.clear()
            optimizer.step()
            tokens_seen += x.numel()
            if done % cfg.log_interval == 0 or done == cfg.steps:
                row = {
                    "kind": "train",
                    "step": done,
                    "loss": loss_value,
                    "task_loss": tl,
                    "balance_loss": float(balance.detach()),
                    "z_loss": float(z.detach()),
                    "train_accuracy": int(correct) / max(1, int(counted)),
                    "lr": cfg.lr_at(step),
                    "grad_norm": norm_value,
                    "dropped": sum(int(a.dropped) for a in auxes),
                }
                if auxes:
                    row["expert_counts"] = [a.counts.tolist() for a in auxes]
                log(row)
                bar.set_postfix(loss=f"{tl:.4f}")
            if done % cfg.eval_interval == 0 or done == cfg.steps:
                last_eval = evaluate(model, *held_out, cfg.eval_batch_size, device)
                best = max(best, last_eval["accuracy"])
                log(
                    {
                        "kind": "eval",
                        "step": done,
                        **last_eval,
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
                bar.set_postfix(loss=f"{tl:.4f}", acc=f"{last_eval['accuracy']:.4f}")
                checkpoint(done, rng_state)
                if cfg.target_accuracy is not None and last_eval["accuracy"] >= cfg.target_accuracy:
                    stopped_early = done < cfg.steps
                    break
    finally:
        if feed is not None:
            feed.close()
        if graphed is not None:
            # make_graphed_callables sets the module's forward to a closure over the module:
            # a cycle that would keep the graphs and their memory pool alive after this run
            vars(graphed).pop("forward", None)
            graphed = None
        if stream_warning_off:
            _STREAM_WARNING_OFF.exit()
    bar.close()
    if last_eval is None:  # resumed at the end: nothing left to do
        last_eval = evaluate(model, *held_out, cfg.eval_batch_size, device)
        best = max(best, last_eval["accuracy"])
    seconds = time.perf_counter() - started
    return {
        "steps": step + 1 if cfg.steps > start_step else start_step,
        "resumed_from": start_step,
        "held_out_accuracy": last_eval["accuracy"],
        "held_out_loss": last_eval["loss"],
        "best_accuracy": best,
        "stopped_early": stopped_early,
        "seconds": round(seconds, 2),
        "seconds_total": None if seconds_before is None else round(seconds_before + seconds, 2),
        "tokens_per_s": round(tokens_seen / seconds) if seconds > 0 else None,
        "device": str(device),
        "total_params": model.total_params(),
        "active_params": model.active_params(),
    }
