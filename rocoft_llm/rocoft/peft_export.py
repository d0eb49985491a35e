"""Export a RoCoFT adapter as an exact peft LoRA directory (``adapter_config.json`` +
``adapter_model.safetensors``), so that peft, transformers' ``load_adapter``, lm-eval's ``peft=`` and
LoRA-serving engines can use it unmerged.

A RoCoFT update of r rows or columns is exactly a LoRA of rank r, ``delta W = B @ A``:

* rows:    ``B`` (d_out x r) is one-hot, column k has a 1 at row ``idx[k]``; ``A`` (r x d_in) holds the
  row deltas ``W_trained[idx] - W0[idx]``;
* columns: ``B`` (d_out x r) holds the column deltas ``W_trained[:, idx] - W0[:, idx]``; ``A`` (r x d_in)
  is one-hot, row k has a 1 at column ``idx[k]``;
* rows and columns (``row_column``): both side by side, a LoRA of rank 2r (the column deltas are zero
  on the selected rows, which the rows own);

with ``lora_alpha = r`` so that peft's scale ``alpha / r`` is 1. The adapter stores the trained slice
itself (absolute values), so the original rows/columns ``W0[idx]`` are read from the base checkpoint;
they are checked against the adapter's base checksums first (a different base is refused, as in
``merge``). A fused BLOOM ``query_key_value`` has 3r rows in row mode, so its rank is 3r
(``rank_pattern`` / ``alpha_pattern``). ``pad_rank`` appends zero rows to ``A`` and zero columns to ``B``
(the product, hence the output, is unchanged) to reach a rank a server accepts.

An adapter trained on a quantized base (``model.quantize``) records it; its deltas are taken against
the DEQUANTIZED base weights (the checkpoint's weights quantized and dequantized as at training), so
the LoRA is exact on the quantized base it was trained on. Served on the unquantized base, the output
differs from the trained model by the quantization error of the base (and of ``W0[idx]``).

Not expressible exactly as LoRA, hence refused: adapters with trained biases (``train_bias``) or
``also_train`` parameters, and the ``entries`` mode (a sparse random mask has full rank). The directory is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..architectures import find_architecture
from ..errors import AdapterError, RoCoFTError
from ..io_utils import atomic_directory, atomic_write_json, check_output_target, read_json
from ..ownership import target_path
from .adapter import read_adapter_config, read_adapter_tensors
from .merge_dir import (
    check_base_slice,
    checkpoint_key,
    dequantized_base,
    list_shards,
    module_placement,
    quantized_keys,
    refuse_quantized_checkpoint,
    resolve_model_dir,
)
from .placement import COLUMN, LOW_RANK_MODES, ROW, Placement, slice_names
from .quantized import write_quantization_record

log = logging.getLogger("rocoft_llm")

PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"


def _check_exportable(adapter: dict, tensors: dict[str, torch.Tensor], adapter_dir: Path) -> None:
    """Only row/column slices are a LoRA: the entries mode, trained biases (``train_bias``) and
    ``also_train`` parameters (norms, lm_head) have no B @ A form."""
    if adapter["mode"] not in LOW_RANK_MODES:
        raise AdapterError(
            f"adapter {adapter_dir} trains mode {adapter['mode']!r}: a random set of single entries has no "
            "exact low-rank form, so no exact peft LoRA exists. Use `rocoft-llm merge` (a full model) "
            "for this adapter instead."
        )
    names = slice_names(adapter["mode"])
    extra = sorted(n for n in tensors if not n.endswith(tuple("." + s for s in names)))
    if extra:
        raise AdapterError(
            f"adapter {adapter_dir} also trained {len(extra)} full tensor(s) ({', '.join(extra[:3])}...: "
            "train_bias or also_train): a LoRA update B @ A has no bias term and covers only the adapted "
            "linears, so no exact peft LoRA exists. Use `rocoft-llm merge` for this adapter instead."
        )


def _base_slices(adapter: dict, base_dir: Path) -> dict[str, tuple[torch.Tensor, ...]]:
    """module -> the ORIGINAL values ``W0`` at its placement in the base checkpoint (checksum-checked)."""
    config = (
        read_json(base_dir / "config.json", "base model config", "pass the base model directory")
        if (base_dir / "config.json").is_file()
        else {}
    )
    refuse_quantized_checkpoint(config, base_dir)
    if config.get("model_type") != adapter["model_type"]:
        raise AdapterError(
            f"the adapter is for model_type {adapter['model_type']!r} but base {base_dir} is "
            f"{config.get('model_type')!r}; pass the base it was trained on ({adapter.get('base_model')})."
        )
    arch = find_architecture(adapter["model_type"])
    prefix = arch.base_model_prefix if arch else None
    shards = list_shards(base_dir)
    where = {}
    for shard in shards:
        with safe_open(str(base_dir / shard), framework="pt") as f:
            where.update(dict.fromkeys(f.keys(), shard))
    out = {}
    quantized = quantized_keys(adapter, set(where), prefix)
    for module, info in adapter["modules"].items():
        key = checkpoint_key(module + ".weight", set(where), prefix)
        if key is None:
            raise AdapterError(
                f"base {base_dir} has no weight {module}.weight; it is not the model the adapter was "
                f"trained on ({adapter.get('base_model')})."
            )
        with safe_open(str(base_dir / where[key]), framework="pt") as f:
            weight = f.get_tensor(key)
        if quantized and key in quantized:  # deltas against the weights the quantized run trained on
            weight = dequantized_base(weight, adapter["quantization"])
        placement = module_placement(adapter, module)
        change = ("slice", placement, None, info["weight_shape"], info.get("base_checksum"))
        check_base_slice(weight, change, key, base_dir, adapter)
        out[module] = placement.read(weight)
    return out


def lora_rank(placement: Placement) -> int:
    """The rank of a module's exact LoRA: its rows, its columns, or both."""
    return placement.index.numel() + (0 if placement.column_index is None else placement.column_index.numel())


def lora_factors(
    placement: Placement,
    trained: tuple[torch.Tensor, ...],
    original: tuple[torch.Tensor, ...],
    shape: list[int],
    rank: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with ``B @ A`` = the RoCoFT update of one weight, padded with zeros to ``rank`` (fp32).

    ``trained`` is cast to the base dtype first: that is what the RoCoFT layer writes into the weight.
    """
    d_out, d_in = shape
    a = torch.zeros(rank, d_in, dtype=torch.float64)
    b = torch.zeros(d_out, rank, dtype=torch.float64)
    deltas = [t.to(o.dtype).double() - o.double() for t, o in zip(trained, original)]
    idx, r = placement.index, placement.index.numel()
    if placement.mode == COLUMN:
        b[:, :r] = deltas[0]
        a[torch.arange(r), idx] = 1.0
        return a.float().contiguous(), b.float().contiguous()
    a[:r] = deltas[0]
    b[idx, torch.arange(r)] = 1.0
    if placement.mode != ROW:  # row_column: the columns' deltas, on the rows outside idx
        cols, c = placement.column_index, placement.column_index.numel()
        b[placement.rest.unsqueeze(1), torch.arange(r, r + c).unsqueeze(0)] = deltas[1]
        a[torch.arange(r, r + c), cols] = 1.0
    return a.float().contiguous(), b.float().contiguous()


def _rank_patterns(ranks: dict[str, int], default: int) -> dict[str, int]:
    """peft ``rank_pattern`` for modules whose rank is not ``default``: keyed by the leaf name when every
    module of that leaf shares the rank, else by the escaped full module name."""
    by_leaf: dict[str, set[int]] = {}
    for name, r in ranks.items():
        by_leaf.setdefault(name.rsplit(".", 1)[-1], set()).add(r)
    pattern = {}
    for name, r in ranks.items():
        if r == default:
            continue
        leaf = name.rsplit(".", 1)[-1]
        pattern[leaf if len(by_leaf[leaf]) == 1 else re.escape(name)] = r
    return pattern


def _check_output(out: Path, overwrite: bool) -> bool:
    """Whether ``out`` exists (an empty dir, or anything with ``overwrite``); refuse otherwise."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise RoCoFTError(f"--out {out} exists and is not a directory; choose another path.")
    if any(out.iterdir()) and not overwrite:
        raise RoCoFTError(
            f"--out {out} exists and is not empty; choose another path or pass --overwrite to replace it."
        )
    return True


def _check_pad_rank(pad_rank: int | None, adapter: dict) -> None:
    """A rank above a weight's smaller dimension only adds zeros (``--pad-rank 100000`` wrote 831 MB
    of them): refused, naming the bound."""
    if pad_rank is None:
        return
    module, shape = min(
        ((m, i["weight_shape"]) for m, i in adapter["modules"].items()), key=lambda x: min(x[1])
    )
    if pad_rank > min(shape):
        raise RoCoFTError(
            f"--pad-rank {pad_rank} is above the smallest weight dimension {min(shape)} ({module}, "
            f"{list(shape)}): a LoRA rank cannot exceed it; pass --pad-rank <= {min(shape)}."
        )


def export_peft(
    source: str | Path,
    out: str | Path,
    base: str | None = None,
    pad_rank: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the RoCoFT adapter directory ``source`` as a peft LoRA directory ``out``. (A training
    run's directory is resolved to its adapter by ``rocoft_llm.methods.peft_export_source``.)

    ``base``: the base model directory (or Hub id) whose weights the adapter was trained from; default:
    the adapter's ``base_model``. ``pad_rank``: pad every module to this rank.
    """
    adapter_dir = Path(source)
    out = target_path(out, "peft export")  # once, before any check
    exists = _check_output(out, overwrite)
    check_output_target(out, exists, "peft export")  # replaceable and writable, before any reading
    adapter = read_adapter_config(adapter_dir)
    _check_pad_rank(pad_rank, adapter)
    tensors = read_adapter_tensors(adapter_dir, adapter)
    _check_exportable(adapter, tensors, adapter_dir)
    base = base or adapter.get("base_model")
    if not base:
        raise AdapterError(
            f"adapter {adapter_dir} names no base model; pass --base with the base model directory."
        )
    originals = _base_slices(adapter, resolve_model_dir(base))
    placements = {m: module_placement(adapter, m) for m in adapter["modules"]}
    ranks = {m: lora_rank(p) for m, p in placements.items()}
    if pad_rank is not None and pad_rank < max(ranks.values()):
        worst = max(ranks, key=ranks.get)
        raise RoCoFTError(
            f"--pad-rank {pad_rank} is below the adapter's largest rank {ranks[worst]} ({worst}); "
            f"pass --pad-rank >= {ranks[worst]}."
        )
    if pad_rank is not None:
        ranks = dict.fromkeys(ranks, pad_rank)
    default = Counter(ranks.values()).most_common(1)[0][0]
    weights = {}
    for module, info in adapter["modules"].items():
        a, b = lora_factors(
            placements[module],
            tuple(tensors[f"{module}.{n}"] for n in slice_names(adapter["mode"])),
            originals[module],
            info["weight_shape"],
            ranks[module],
        )
        weights[f"base_model.model.{module}.lora_A.weight"] = a
        weights[f"base_model.model.{module}.lora_B.weight"] = b
    patterns = _rank_patterns(ranks, default)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": default,
        "lora_alpha": default,
        "rank_pattern": patterns,
        "alpha_pattern": dict(patterns),
        "target_modules": sorted(adapter.get("targets") or {m.rsplit(".", 1)[-1] for m in ranks}),
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }
    provenance = {
        "library": "rocoft-llm",
        "source_adapter": str(adapter_dir),
        "mode": adapter["mode"],
        "rank": adapter["rank"],
        "pad_rank": pad_rank,
        "adapter_tensors_sha256": adapter["tensors_sha256"],
        "quantization": (adapter.get("quantization") or {}).get("type"),
    }
    with atomic_directory(out, overwrite=exists, what="peft export") as tmp:
        save_file(
            weights,
            str(tmp / PEFT_WEIGHTS_FILE),
            metadata={"format": "pt", "rocoft_export": json.dumps(provenance)},
        )
        atomic_write_json(tmp / PEFT_CONFIG_FILE, config)
        if adapter.get("quantization"):  # `eval --adapter` then loads the base as it was trained on
            write_quantization_record(tmp, adapter["quantization"]["type"])
    log.info("exported %d modules of %s as a peft LoRA (r=%d) to %s", len(ranks), adapter_dir, default, out)
    if adapter.get("quantization"):
        log.warning(
            "the adapter was trained on an %s-quantized base: the LoRA's deltas are against the dequantized "
            "weights; load its base with the same quantization to get the trained model (on the "
            "unquantized base it differs by the quantization error)",
            adapter["quantization"]["type"],
        )
    return out


def peft_config_summary(out: Path) -> str:
    """One line about an exported directory, for the CLI."""
    cfg = json.loads((Path(out) / PEFT_CONFIG_FILE).read_text())
    return f"r={cfg['r']}, target_modules={cfg['target_modules']}, rank_pattern={cfg['rank_pattern']}"
