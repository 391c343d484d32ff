"""Real embeddings for LADS: a precomputed-features file, and an optional open_clip encoder.

**The features file** (``.npz`` or ``.safetensors``; the keys follow the official embedding
cache, ``{train,val,test}_{features,labels,domains}``)::

    train_features  (n, d) float   image embeddings of the training split (L2-normalised on load)
    train_labels    (n,)   int     class index in [0, C)
    train_domains   (n,)   int     domain index; all 0 (the training domain) unless bias
    val_features / val_labels / val_domains      the same for validation (training domain)
    test_features / test_labels / test_domains   the same for the test set (every domain)
    domain_prompts  (D, C, d) float  text embedding of the class-specific prompt of each
                                     domain; row 0 is the training domain ("a photo of a {c}")
    class_prompts   (C, d) float     generic class prompts ("a photo of a {c}") for L_CC and
                                     generic zero-shot
    bias            ()  int (optional, npz)  1 for the dataset-bias setting (Waterbirds)

In a safetensors file ``bias`` and the optional ``class_names`` / ``domain_names`` (JSON lists)
go in the header metadata; in an ``.npz`` the names are string arrays. Any missing key, wrong
shape or non-finite value raises :class:`~theory.errors.InputError` naming it.

**The encoder path** (:func:`encode_with_open_clip`) builds such a file from images with
``open_clip`` when the package, Pillow and a local checkpoint are present; otherwise it raises
an InputError naming what is missing. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from models.lads import EmbeddingTask
from theory.errors import InputError

SPLITS = ("train", "val", "test")
ARRAY_KEYS = (
    *(f"{s}_{k}" for s in SPLITS for k in ("features", "labels", "domains")),
    "domain_prompts",
    "class_prompts",
)


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not path.exists():
        raise InputError(f"{path}: no such features file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise InputError(f"{path}: not a readable .npz file ({err})") from err
        meta: dict[str, Any] = {}
        if "bias" in arrays:
            meta["bias"] = bool(int(arrays.pop("bias")))
        for name in ("class_names", "domain_names"):
            if name in arrays:
                meta[name] = [str(v) for v in arrays.pop(name)]
        return arrays, meta
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file, safe_open

        try:
            arrays = load_file(str(path))
            with safe_open(str(path), framework="np") as f:
                header = f.metadata() or {}
        except (OSError, SafetensorError, ValueError) as err:
            raise InputError(f"{path}: not a readable .safetensors file ({err})") from err
        meta = {}
        try:
            if "bias" in header:
                meta["bias"] = bool(json.loads(header["bias"]))
            for name in ("class_names", "domain_names"):
                if name in header:
                    meta[name] = list(json.loads(header[name]))
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: metadata is not JSON ({err})") from err
        return arrays, meta
    raise InputError(f"{path}: unknown features format {path.suffix!r}; use .npz or .safetensors")


def _unit(path: Path, name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{path}: {name} has non-finite values")
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise InputError(f"{path}: {name} has an all-zero row")
    return a / norms


def load_features(path: str | Path) -> tuple[EmbeddingTask, dict[str, Any]]:
    """Read and validate a features file; returns the task and its metadata (names, bias)."""
    path = Path(path)
    arrays, meta = _read(path)
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    for key in ARRAY_KEYS:
        a = arrays[key]
        if key.endswith(("labels", "domains")):
            if not np.issubdtype(a.dtype, np.integer):
                raise InputError(f"{path}: {key} must be integers, got dtype {a.dtype}")
            out[key] = a.astype(np.int64)
        else:
            if not np.issubdtype(a.dtype, np.floating):
                raise InputError(f"{path}: {key} must be floats, got dtype {a.dtype}")
            out[key] = _unit(path, key, a)
    try:
        task = EmbeddingTask.from_splits(
            {s: (out[f"{s}_features"], out[f"{s}_labels"], out[f"{s}_domains"]) for s in SPLITS},
            out["domain_prompts"],
            out["class_prompts"],
            bias=bool(meta.get("bias", False)),
        )
    except InputError as err:
        raise InputError(f"{path}: {err}") from err
    return task, meta


def save_features(
    path: str | Path, task: EmbeddingTask, meta: dict[str, Any] | None = None
) -> None:
    """Write a task in the documented schema (.npz or .safetensors, by suffix)."""
    path = Path(path)
    meta = meta or {}
    arrays: dict[str, np.ndarray] = {}
    for s in SPLITS:
        arrays[f"{s}_features"] = np.asarray(getattr(task, f"{s}_x"), dtype=np.float32)
        arrays[f"{s}_labels"] = np.asarray(getattr(task, f"{s}_y"), dtype=np.int64)
        arrays[f"{s}_domains"] = np.asarray(getattr(task, f"{s}_d"), dtype=np.int64)
    arrays["domain_prompts"] = task.domain_prompts.astype(np.float32)
    arrays["class_prompts"] = task.class_prompts.astype(np.float32)
    if path.suffix == ".npz":
        extra: dict[str, np.ndarray] = {"bias": np.array(int(task.bias))}
        for name in ("class_names", "domain_names"):
            if name in meta:
                extra[name] = np.array(meta[name], dtype=str)
        np.savez(path, **{**arrays, **extra})  # type: ignore[arg-type]
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        header = {"bias": json.dumps(task.bias)}
        header.update(
            {k: json.dumps(list(meta[k])) for k in ("class_names", "domain_names") if k in meta}
        )
        save_file(arrays, str(path), metadata=header)
    else:
        raise InputError(
            f"{path}: unknown features format {path.suffix!r}; use .npz or .safetensors"
        )


# ---------------------------------------------------------------------------------------------
# Optional: encode images and prompts with open_clip from a local checkpoint


def check_open_clip(checkpoint: str | Path) -> None:
    """Raise an InputError naming whatever the open_clip path lacks here."""
    missing = []
    if importlib.util.find_spec("open_clip") is None:
        missing.append("the open_clip package (pip install open_clip_torch)")
    if importlib.util.find_spec("PIL") is None:
        missing.append("Pillow (pip install pillow)")
    if not Path(checkpoint).is_file():
        missing.append(f"the checkpoint file {checkpoint}")
    if missing:
        raise InputError("cannot encode with open_clip: missing " + "; ".join(missing))


def encode_with_open_clip(
    manifest_path: str | Path, model_name: str, checkpoint: str | Path, out: str | Path
) -> Path:
    """Encode the images and prompts of a manifest into a features file.

    The manifest is JSON: ``{"classes": [...], "domain_templates": ["a photo of a {}.",
    "a painting of a {}.", ...], "class_template": "a photo of a {}.", "images": [{"path": ...,
    "split": "train"|"val"|"test", "label": int, "domain": int}, ...]}``; image paths are
    relative to the manifest. Nothing is downloaded: ``checkpoint`` must be a local file.
    """
    check_open_clip(checkpoint)
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
        classes = list(manifest["classes"])
        templates = list(manifest["domain_templates"])
        class_template = str(manifest["class_template"])
        images = list(manifest["images"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"{manifest_path}: not a LADS manifest ({err!r})") from err

    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=str(checkpoint)
    )
    tokenizer = open_clip.get_tokenizer(model_name)
    model.eval()

    def text(prompts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return model.encode_text(tokenizer(prompts)).float().numpy()

    domain_prompts = np.stack([text([t.format(c) for c in classes]) for t in templates])
    class_prompts = text([class_template.format(c) for c in classes])
    feats: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    domains: dict[str, list[int]] = {s: [] for s in SPLITS}
    for item in images:
        split = item["split"]
        if split not in SPLITS:
            raise InputError(f"{manifest_path}: unknown split {split!r}")
        image = preprocess(Image.open(manifest_path.parent / item["path"]).convert("RGB"))
        with torch.no_grad():
            feats[split].append(model.encode_image(image[None]).float().numpy()[0])
        labels[split].append(int(item["label"]))
        domains[split].append(int(item["domain"]))
    if any(not feats[s] for s in SPLITS):
        raise InputError(f"{manifest_path}: every split (train, val, test) needs images")
    task = EmbeddingTask.from_splits(
        {
            s: (
                _unit(manifest_path, f"{s} features", np.stack(feats[s])),
                np.array(labels[s]),
                np.array(domains[s]),
            )
            for s in SPLITS
        },
        _unit(manifest_path, "domain prompts", domain_prompts),
        _unit(manifest_path, "class prompts", class_prompts),
    )
    save_features(out, task, {"class_names": classes, "domain_names": templates})
    return Path(out)
