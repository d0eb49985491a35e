"""Merge an adapter into a base checkpoint on disk, one safetensors shard at a time.

The output is a standard HF model directory (the base's config, tokenizer and other files,
merged shards with the same names and index) that ``AutoModelForCausalLM.from_pretrained`` loads
with no rocoft-llm code. Peak memory is one shard, so a 13B model merges on a small machine. The
directory is assembled under a temporary name and appears only when complete. The adapter is checked
as `load_adapter` checks it (its hashes, indices, and the base weights at the adapted rows/columns),
so a different base model of the same shapes or an edited adapter is refused, never merged.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..architectures import find_architecture
from ..errors import AdapterError, RoCoFTError
from ..io_utils import atomic_directory, atomic_write_json, check_output_target, read_json, sha256_file
from ..ownership import target_path
from .adapter import CHECKSUM_RTOL, CONFIG_FILE, read_adapter_config, read_adapter_tensors
from .placement import Placement, make_placement, slice_names

log = logging.getLogger("rocoft_llm")

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


def resolve_model_dir(name_or_path: str) -> Path:
    """A local model directory, or the Hub snapshot of ``name_or_path`` (downloads when online)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(name_or_path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
        )
    except Exception as e:  # noqa: BLE001 - offline, unknown id, auth: all mean "not available"
        raise RoCoFTError(
            f"base model {name_or_path!r} is not a local directory and could not be fetched from the Hub "
            f"({type(e).__name__}: {e}). Pass the path of a downloaded model directory."
        ) from None


def list_shards(model_dir: Path) -> list[str]:
    if (model_dir / INDEX_FILE).is_file():
        index = read_json(model_dir / INDEX_FILE, "base model index", "re-download or re-save the base model")
        if not isinstance(index.get("weight_map"), dict):
            raise RoCoFTError(
                f"{model_dir / INDEX_FILE} has no 'weight_map'; re-download or re-save the base model."
            )
        return sorted(set(index["weight_map"].values()))
    if (model_dir / SINGLE_FILE).is_file():
        return [SINGLE_FILE]
    raise RoCoFTError(
        f"{model_dir} has no {SINGLE_FILE} or {INDEX_FILE}; merging streams safetensors only "
        "(pickled .bin checkpoints are not loaded for safety). Convert the base with "
        "`model.save_pretrained(dir)` first."
    )


def checkpoint_key(param_name: str, keys: set[str], prefix: str | None) -> str | None:
    """The checkpoint key of a model parameter name (base checkpoints may omit the model prefix)."""
    candidates = [param_name]
    if prefix:
        if param_name.startswith(prefix + "."):
            candidates.append(param_name[len(prefix) + 1 :])
        else:
            candidates.append(f"{prefix}.{param_name}")
    return next((c for c in candidates if c in keys), None)


def _plan(
    adapter: dict, tensors: dict[str, torch.Tensor], keys: set[str], prefix: str | None
) -> dict[str, tuple]:
    """checkpoint key -> (kind, payload): how each affected tensor changes."""
    plan, missing = {}, []
    for module, info in adapter["modules"].items():
        key = checkpoint_key(module + ".weight", keys, prefix)
        if key is None:
            missing.append(module + ".weight")
            continue
        plan[key] = (
            "slice",
            module_placement(adapter, module),
            tuple(tensors[f"{module}.{n}"] for n in slice_names(adapter["mode"])),
            info["weight_shape"],
            info.get("base_checksum"),
        )
    slices = {f"{m}.{n}" for m in adapter["modules"] for n in slice_names(adapter["mode"])}
    for name, t in tensors.items():
        if name in slices:
            continue
        key = checkpoint_key(name, keys, prefix)
        if key is None:
            missing.append(name)
        else:
            plan[key] = ("full", t)
    if missing:
        raise AdapterError(
            f"the base checkpoint lacks {len(missing)} tensor(s) the adapter changes, e.g. {missing[:3]}; "
            f"it is not the model the adapter was trained on ({adapter.get('base_model')})."
        )
    return plan


def refuse_quantized_checkpoint(config: dict, base_dir: Path) -> None:
    """A base saved already quantized (its config.json has a ``quantization_config``) holds packed
    weights that cannot be merged into or read as a full-precision base."""
    quant = config.get("quantization_config")
    if quant:
        kind = quant.get("bnb_4bit_quant_type") if quant.get("load_in_4bit") else quant.get("quant_method")
        raise AdapterError(
            f"base {base_dir} is a quantized checkpoint ({kind}): its weights are packed, not full precision. "
            "Pass the full-precision base the run loaded (its model.name_or_path); for an adapter trained "
            "with model.quantize, merge and export-peft quantize that base themselves."
        )


def quantized_keys(adapter: dict, keys: set[str], prefix: str | None) -> set[str]:
    """Checkpoint keys of the weights a quantized run's base held quantized (empty for a full-precision
    run); a key missing from the checkpoint is an error."""
    recorded = adapter.get("quantization")
    if not recorded:
        return set()
    found = {m: checkpoint_key(m + ".weight", keys, prefix) for m in recorded["modules"]}
    missing = [m for m, k in found.items() if k is None]
    if missing:
        raise AdapterError(
            f"the base checkpoint lacks {len(missing)} quantized weight(s) of the adapter's base, e.g. "
            f"{missing[:3]}; it is not the model the adapter was trained on ({adapter.get('base_model')})."
        )
    return set(found.values())


def dequantized_base(tensor: torch.Tensor, recorded: dict) -> torch.Tensor:
    """A base checkpoint weight as the quantized run saw it (quantized, then dequantized), in the
    checkpoint's dtype."""
    from .quantized import quantize_roundtrip

    return quantize_roundtrip(tensor, recorded["type"], recorded["dtype"]).to(tensor.dtype)


def module_placement(adapter: dict, module: str) -> Placement:
    """Where the adapter's values of ``module`` live in its weight (indices already checked by
    ``read_adapter_config``)."""
    info = adapter["modules"][module]
    columns = info.get("column_indices")
    return make_placement(
        adapter["mode"],
        torch.tensor(info["indices"]),
        tuple(info["weight_shape"]),
        None if columns is None else torch.tensor(columns),
    )


def check_base_slice(tensor: torch.Tensor, change: tuple, key: str, base_dir: Path, adapter: dict) -> None:
    """The checks ``load_adapter`` makes: the base weight's shape, and its checksum at the adapted rows/columns
    (a different model of the same shapes is refused, not silently merged)."""
    _, placement, _, shape, want = change
    if list(tensor.shape) != list(shape):
        raise AdapterError(
            f"{key}: base weight {list(tensor.shape)} in {base_dir} != the adapter's {shape}; pass the "
            f"base it was trained on ({adapter.get('base_model')})."
        )
    if want is None:
        return
    have = float(sum(t.double().abs().sum() for t in placement.read(tensor)))
    if not math.isclose(have, want, rel_tol=CHECKSUM_RTOL, abs_tol=1e-6):
        raise AdapterError(
            f"the base model's weights at the adapted rows/columns differ from the model the adapter was "
            f"trained on ({key}: {have:.6g} vs {want:.6g}): {base_dir} is not base "
            f"{adapter.get('base_model')!r}. Pass the base model the adapter was trained on."
        )


def _apply(tensor: torch.Tensor, change: tuple, key: str) -> torch.Tensor:
    if change[0] == "full":
        new = change[1]
        if tuple(new.shape) != tuple(tensor.shape):
            raise AdapterError(f"{key}: adapter tensor {tuple(new.shape)} != base {tuple(tensor.shape)}")
        return new.to(tensor.dtype).contiguous()
    _, placement, slices, _, _ = change
    expected = [tuple(t.shape) for t in placement.read(tensor)]
    if [tuple(t.shape) for t in slices] != expected:
        raise AdapterError(
            f"{key}: adapter slice(s) {[tuple(t.shape) for t in slices]} do not fit base weight "
            f"{tuple(tensor.shape)}"
        )
    tensor = tensor.clone().contiguous()
    placement.write(tensor, slices)
    return tensor


def merge_to_directory(
    base: str, adapter_dir: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True
) -> Path:
    """Write ``base`` + adapter as a plain HF model directory at ``out``; returns ``out``."""
    out = target_path(out, "merged model")  # once, before any check
    check_output_target(out, overwrite, "merged model")  # before reading gigabytes of weights
    adapter_dir = Path(adapter_dir)
    adapter = read_adapter_config(adapter_dir)
    tensors = read_adapter_tensors(adapter_dir, adapter)
    base_dir = resolve_model_dir(base)
    config = (
        read_json(base_dir / "config.json", "base model config", "re-download or re-save the base model")
        if (base_dir / "config.json").is_file()
        else {}
    )
    refuse_quantized_checkpoint(config, base_dir)
    if config.get("model_type") != adapter["model_type"]:
        raise AdapterError(
            f"adapter {adapter_dir} is for model_type {adapter['model_type']!r} but {base_dir} is "
            f"{config.get('model_type')!r}; pass the base it was trained on ({adapter.get('base_model')})."
        )
    arch = find_architecture(adapter["model_type"])
    shards = list_shards(base_dir)
    shard_keys, shard_metadata = {}, {}
    for shard in shards:
        with safe_open(str(base_dir / shard), framework="pt") as f:
            shard_keys[shard] = set(f.keys())
            shard_metadata[shard] = f.metadata() or {"format": "pt"}
    plan = _plan(
        adapter, tensors, set().union(*shard_keys.values()), arch.base_model_prefix if arch else None
    )
    iterator = shards
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(shards, desc="merging shards", unit="shard")
    with atomic_directory(out, overwrite=overwrite, what="merged model") as tmp:
        for item in base_dir.iterdir():
            if item.is_file() and not item.name.endswith(WEIGHT_SUFFIXES):
                shutil.copy2(item, tmp / item.name)
        done = 0
        all_keys = set().union(*shard_keys.values())
        dequantize = quantized_keys(adapter, all_keys, arch.base_model_prefix if arch else None)
        for shard in iterator:
            state = load_file(str(base_dir / shard))
            for key in shard_keys[shard] & dequantize:
                state[key] = dequantized_base(state[key], adapter["quantization"])
            for key in shard_keys[shard] & set(plan):
                if plan[key][0] == "slice":
                    check_base_slice(state[key], plan[key], key, base_dir, adapter)
                state[key] = _apply(state[key], plan[key], key)
                done += 1
            save_file(state, str(tmp / shard), metadata=shard_metadata[shard])
            del state
        if done != len(plan):
            raise AdapterError(
                f"merged {done} of {len(plan)} tensors: the shards of {base_dir} do not hold every "
                "tensor their index names; re-download or re-save the base model."
            )
        atomic_write_json(
            tmp / "rocoft_merge.json",
            {
                "base_model": str(base),
                "adapter": str(adapter_dir),
                "adapter_sha256": adapter[
                    "tensors_sha256"
                ],  # read_adapter_tensors just checked the file against it
                "adapter_config_sha256": sha256_file(adapter_dir / CONFIG_FILE),
                "tensors_changed": len(plan),
                # a quantized run: these linears hold their dequantized values (full precision)
                "dequantized": {"from": adapter["quantization"]["type"], "tensors": len(dequantize)}
                if dequantize
                else None,
            },
        )
    if dequantize:
        log.warning(
            "the adapter was trained on an %s-quantized base: its %d quantized linears are merged as their "
            "DEQUANTIZED weights (what training saw), so the merged model is full precision but not the "
            "original base plus the update",
            adapter["quantization"]["type"],
            len(dequantize),
        )
    log.info("merged %d tensors of %s into %s", len(plan), base_dir, out)
    return Path(out)
