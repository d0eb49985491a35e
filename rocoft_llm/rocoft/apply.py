"""Public RoCoFT API: :class:`RoCoFTConfig`, :func:`apply_rocoft`, :func:`trainable_parameters`,
:func:`merge_rocoft`.

``apply_rocoft`` freezes the whole model, picks indices for every targeted linear (from the
config, an indices file, explicit indices, or calibration batches), makes them identical on all
ranks, and swaps each targeted ``nn.Linear`` for a :class:`RoCoFTLinear` in place.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..architectures import default_targets, fused_layout, supported_model_types
from ..distributed import world_size
from ..errors import RoCoFTError
from ..io_utils import read_json
from .config import RoCoFTConfig
from .gather import full_weight, real_numel, weight_shape
from .layer import RoCoFTLinear
from .placement import COLUMN, COLUMN_SLICE_NAME, ENTRIES, ROW, ROW_COLUMN, SLICE_NAME, entries_count
from .quantized import QuantizedRoCoFTLinear, dequantized_weight, is_quantized_linear
from .selection import SCORED_SELECTIONS, random_entries, row_groups, run_calibration, scored_indices

log = logging.getLogger("rocoft_llm")

CONFIG_ATTR = "rocoft_config"
SLICE_NAMES = (SLICE_NAME, COLUMN_SLICE_NAME)


def rocoft_modules(model: nn.Module) -> dict[str, RoCoFTLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, RoCoFTLinear)}


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def find_target_linears(model: nn.Module, targets: Iterable[str]) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` whose path ends with a target; a target matching nothing is an error."""
    targets = list(targets)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    found = {n: m for n, m in linears.items() if any(_matches(n, t) for t in targets)}
    unmatched = [t for t in targets if not any(_matches(n, t) for n in linears)]
    if unmatched:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in linears})
        raise RoCoFTError(
            f"target(s) {unmatched} matched no nn.Linear in this {type(model).__name__}. "
            f"Linear module names present: {', '.join(leaves)}."
        )
    return found


#: one module's indices: (rows / columns / flat entries, row_column's columns or None)
ModuleIndices = tuple[torch.Tensor, "torch.Tensor | None"]


@contextlib.contextmanager
def selection_weight(linear: nn.Module):
    """The weight that index selection reads: the full (gathered) weight, or for a bitsandbytes linear
    its dequantized copy (one layer at a time, dropped after selection)."""
    if is_quantized_linear(linear):
        yield dequantized_weight(linear)
    else:
        with full_weight(linear.weight) as w:
            yield w


def _index_groups(model: nn.Module, name: str, out_features: int, mode: str):
    layout = fused_layout(
        getattr(getattr(model, "config", None), "model_type", None), name.rsplit(".", 1)[-1]
    )
    if layout is None or mode not in (ROW, ROW_COLUMN):
        return None
    heads = getattr(model.config, layout.heads_attr, None) or model.config.num_attention_heads
    return row_groups(out_features, len(layout.parts), heads)


def load_indices_file(path: str | Path, cfg: RoCoFTConfig) -> dict[str, list[int]]:
    """Indices written by ``rocoft-llm select``; mode and rank must agree with ``cfg``."""
    data = read_json(path, "indices file", "create it with `rocoft-llm select`")
    for key, want in (("mode", cfg.mode), ("rank", cfg.rank)):
        if data.get(key) != want:
            raise RoCoFTError(
                f"indices file {path}: {key}={data.get(key)!r} but the config asks for {want!r}; "
                f"set rocoft.{key}: {data.get(key)!r} or recompute the file."
            )
    if not isinstance(data.get("modules"), dict):
        raise RoCoFTError(
            f"indices file {path} has no 'modules' mapping; recreate it with `rocoft-llm select`."
        )
    return data["modules"]


def split_module_indices(name: str, value, mode: str) -> tuple[list, list | None]:
    """A module's stored indices: a list (row, column, entries), or for row_column a mapping
    ``{"rows": [...], "columns": [...]}`` (indices files) / ``{"indices", "column_indices"}`` (adapters)."""
    if mode != ROW_COLUMN:
        return value, None
    if isinstance(value, dict):
        rows = value.get("rows", value.get("indices"))
        columns = value.get("columns", value.get("column_indices"))
        if rows is not None and columns is not None:
            return rows, columns
    raise RoCoFTError(
        f"{name}: mode 'row_column' needs both row and column indices ({{'rows': [...], 'columns': [...]}}); "
        "the indices come from a row- or column-mode selection: recompute them with this mode."
    )


def index_parts(
    cfg: RoCoFTConfig, shape: tuple[int, int], row_groups_count: int = 1
) -> list[tuple[str, int, int]]:
    """(kind, range, count) of each index list of one module: rows (``rank`` per fused group), columns,
    or flat entries; row_column has rows then columns."""
    out_f, in_f = shape
    if cfg.mode == ENTRIES:
        return [(ENTRIES, out_f * in_f, entries_count(cfg.density, shape))]
    rows = (ROW, out_f, cfg.rank * row_groups_count)
    columns = (COLUMN, in_f, cfg.rank)
    return {ROW: [rows], COLUMN: [columns], ROW_COLUMN: [rows, columns]}[cfg.mode]


def _check_indices(name: str, idx: torch.Tensor, n: int, expected: int) -> torch.Tensor:
    if idx.dim() != 1 or idx.numel() != expected:
        raise RoCoFTError(f"{name}: expected {expected} indices, got shape {tuple(idx.shape)}.")
    if idx.numel() and (idx.min() < 0 or idx.max() >= n):
        raise RoCoFTError(f"{name}: index out of range [0, {n}): {idx.tolist()}.")
    if torch.unique(idx).numel() != idx.numel():
        raise RoCoFTError(f"{name}: duplicate indices {idx.tolist()}.")
    return torch.sort(idx).values


def _broadcast_indices(indices: dict[str, ModuleIndices]) -> dict[str, ModuleIndices]:
    """Make every rank use rank 0's indices (random seeds or calibration data may differ)."""
    import torch.distributed as dist

    if world_size() == 1:
        return indices
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    out = {}
    for name in sorted(indices):
        parts = []
        for t in indices[name]:
            if t is not None:
                t = t.to(device)
                dist.broadcast(t, src=0)
                t = t.cpu()
            parts.append(t)
        out[name] = tuple(parts)
    return out


def resolve_targets(model: nn.Module, cfg: RoCoFTConfig) -> tuple[str, ...]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    try:
        return default_targets(model_type, cfg.targets)
    except RoCoFTError:
        raise RoCoFTError(
            f"model_type {model_type!r} has no default RoCoFT targets (supported: {', '.join(supported_model_types())}); "
            "set RoCoFTConfig(targets=[...]) / rocoft.targets to the nn.Linear names to adapt."
        ) from None


def compute_indices(
    model: nn.Module,
    linears: dict[str, nn.Linear],
    cfg: RoCoFTConfig,
    calibration: Iterable[dict] | None = None,
    indices: dict[str, Iterable[int]] | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Sorted indices per targeted linear, ``(index, column_index or None)``: explicit > indices_file >
    selection; the same on every rank."""
    if indices is None and cfg.indices_file:
        indices = load_indices_file(cfg.indices_file, cfg)
    norms = None
    if indices is None and cfg.selection in SCORED_SELECTIONS:
        if calibration is None:
            raise RoCoFTError(
                f"selection {cfg.selection!r} is Wanda-scored and needs calibration batches "
                "(apply_rocoft(..., calibration=batches)) or an indices_file from `rocoft-llm select`."
            )
        norms = run_calibration(model, linears, calibration, cfg.calibration_batches, progress=progress)
    chosen: dict[str, ModuleIndices] = {}
    for name, lin in linears.items():
        out_f, in_f = weight_shape(lin.weight)
        groups = _index_groups(model, name, out_f, cfg.mode)
        parts = index_parts(cfg, (out_f, in_f), len(groups) if groups else 1)
        if indices is not None:
            if name not in indices:
                raise RoCoFTError(
                    f"no indices given for targeted module {name}; the indices come from a "
                    "different model or target list."
                )
            given = split_module_indices(name, indices[name], cfg.mode)
            picked = [
                _check_indices(name, torch.as_tensor(list(values), dtype=torch.long), n, want)
                for values, (_, n, want) in zip(given, parts)
            ]
        elif cfg.mode == ENTRIES:
            picked = [random_entries(parts[0][1], parts[0][2], cfg.seed, name)]
        else:
            with selection_weight(lin) as w:
                picked = [
                    scored_indices(
                        w,
                        kind,
                        cfg.rank,
                        cfg.selection,
                        cfg.seed,
                        name if k == 0 else f"{name}:columns",
                        norms.get(name) if norms else None,
                        groups,
                    )
                    for k, (kind, _, _) in enumerate(parts)
                ]
        chosen[name] = (picked[0], picked[1] if len(picked) > 1 else None)
    return _broadcast_indices(chosen)


def apply_rocoft(
    model: nn.Module,
    cfg: RoCoFTConfig,
    calibration: Iterable[dict] | None = None,
    indices: dict[str, Iterable[int]] | None = None,
) -> nn.Module:
    """Freeze ``model`` and wrap its targeted linears with RoCoFT, in place; returns ``model``.

    ``calibration``: iterable of batches (dicts with ``input_ids`` and optionally
    ``attention_mask``) for the Wanda-scored selections. ``indices``: explicit per-module indices
    (as stored in an adapter), which override the selection.
    """
    if rocoft_modules(model):
        raise RoCoFTError(
            "apply_rocoft: this model already has RoCoFT layers; merge_rocoft() it or start from the base."
        )
    linears = find_target_linears(model, resolve_targets(model, cfg))
    chosen = compute_indices(model, linears, cfg, calibration, indices)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lin in linears.items():
        index, column_index = chosen[name]
        if is_quantized_linear(lin):  # a bitsandbytes base: the slices act on its output
            device = lin.weight.device
            wrapped = QuantizedRoCoFTLinear(
                lin,
                index.to(device),
                cfg.mode,
                cfg.train_bias,
                None if column_index is None else column_index.to(device),
                dtype=getattr(model, "dtype", torch.float32),
            )
        else:
            with full_weight(lin.weight) as w:
                wrapped = RoCoFTLinear(
                    lin,
                    index.to(w.device),
                    cfg.mode,
                    cfg.train_bias,
                    None if column_index is None else column_index.to(w.device),
                )
        parent_name, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, leaf, wrapped)
    _mark_also_train(model, cfg.also_train)
    setattr(model, CONFIG_ATTR, cfg)
    n_train = sum(p.numel() for p in trainable_parameters(model).values())
    n_total = sum(real_numel(p) for p in model.parameters())
    log.info(
        "RoCoFT %s %s (%s) on %d linears: %s trainable parameters of %s (%.4f%%)",
        cfg.mode,
        f"p={cfg.density:g}" if cfg.mode == ENTRIES else f"r={cfg.rank}",
        cfg.selection,
        len(linears),
        f"{n_train:,}",
        f"{n_total:,}",
        100.0 * n_train / max(n_total, 1),
    )
    return model


def _mark_also_train(model: nn.Module, patterns: list[str]) -> None:
    if not patterns:
        return
    regexes = [re.compile(p) for p in patterns]
    hits = [
        n
        for n, p in model.named_parameters()
        if any(r.search(n) for r in regexes) and not any(s in n for s in SLICE_NAMES)
    ]
    if not hits:
        raise RoCoFTError(f"also_train patterns {patterns} matched no parameter name.")
    params = dict(model.named_parameters())
    for n in hits:
        params[n].requires_grad_(True)
    model._rocoft_also_train = hits


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """THE list of trainable parameters, by name: used for freezing, the optimizer, saving and wrapping.

    With RoCoFT applied: every slice (``<module>.rocoft_slice``), trained biases and ``also_train``
    parameters. Without (LoRA / full finetuning): every parameter with ``requires_grad``.
    """
    modules = rocoft_modules(model)
    if not modules:
        return {n: p for n, p in model.named_parameters() if p.requires_grad}
    out = {}
    for mname, module in modules.items():
        for pname, p in module.trainable_parameters().items():
            out[f"{mname}.{pname}"] = p
    params = dict(model.named_parameters())
    for n in getattr(model, "_rocoft_also_train", []):
        out[n] = params[n]
    return out


def merge_rocoft(model: nn.Module) -> nn.Module:
    """Write every slice into its weight and put plain ``nn.Linear`` layers back, in place.

    Works on an unsharded model (single process, or after gathering); the merged model has
    exactly the base model's classes and state-dict keys.
    """
    modules = rocoft_modules(model)
    if not modules:
        raise RoCoFTError("merge_rocoft: the model has no RoCoFT layers to merge.")
    for name, module in modules.items():
        parent_name, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, leaf, module.merged_linear())
    for attr in (CONFIG_ATTR, "_rocoft_also_train"):
        if hasattr(model, attr):
            delattr(model, attr)
    return model
