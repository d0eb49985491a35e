"""Adapter files: ``adapter_config.json`` + ``adapter_model.safetensors``.

The config holds the format version, base model, model_type, mode, rank, selection, targets,
per-module indices, weight shapes and base-weight checksums, the sha256 of the tensor file (a
truncated or edited file is caught) and ``config_sha256``, a hash of the config itself (an edited
rank, index or mode is caught too - format 2; format-1 adapters, which lack it, still load). The directory is assembled under a temporary name,
verified (non-empty, finite, expected shapes) and renamed into place; ``adapter_config.json`` is
written last, so a directory without it is a partial save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..architectures import fused_layout
from ..distributed import is_main
from ..errors import AdapterError, RoCoFTError
from ..io_utils import atomic_directory, atomic_write_json, read_json, sha256_file
from ..version import __version__
from .apply import (
    CONFIG_ATTR,
    RoCoFTConfig,
    apply_rocoft,
    index_parts,
    rocoft_modules,
    trainable_parameters,
)
from .gather import full_tensor_copy, weight_shape
from .placement import MODES, ROW, ROW_COLUMN
from .quantized import model_quantization, quantization_mismatch

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no config_sha256
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CHECKSUM_RTOL = 1e-3
RESAVE = "restore the original adapter directory or save the adapter again"
log = logging.getLogger("rocoft_llm")


def config_hash(data: dict) -> str:
    """sha256 of the adapter config without its own hash (canonical JSON): covers indices, rank, mode,
    targets and the tensor file's hash, so neither the config nor the tensors can be edited unnoticed."""
    body = {k: v for k, v in data.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full (gathered) copies of every trainable tensor, gathered one at a time (collective)."""
    return {name: full_tensor_copy(p).contiguous() for name, p in trainable_parameters(model).items()}


def _expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: weight_shape(p) for name, p in trainable_parameters(model).items()}


def verify_adapter_tensors(
    tensors: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], where: str
) -> None:
    """Non-empty, finite, exactly the expected names and shapes - or an AdapterError."""
    if not tensors:
        raise AdapterError(
            f"{where}: the adapter holds no tensors (an empty adapter is the classic ZeRO-3 "
            "save bug); nothing was trained or the gather failed."
        )
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise AdapterError(
            f"{where}: tensor names differ from the model's trainable parameters: "
            f"missing {missing[:5]}, unexpected {extra[:5]}."
        )
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name]) or t.numel() == 0:
            raise AdapterError(
                f"{where}: {name} has shape {tuple(t.shape)}, expected {tuple(expected[name])}."
            )
        if not torch.isfinite(t).all():
            raise AdapterError(
                f"{where}: {name} contains NaN or Inf values; the run diverged - do not use it."
            )


def save_adapter(
    model: nn.Module,
    path: str | Path,
    base_model: str | None = None,
    overwrite: bool = False,
    metadata: dict | None = None,
) -> Path | None:
    """Write the adapter of a RoCoFT model to directory ``path`` (rank 0 writes; all ranks call).

    ``base_model`` defaults to ``model.config._name_or_path``. ``metadata`` (JSON-able) is stored
    as is, e.g. the data manifest a run trained on.
    """
    modules = rocoft_modules(model)
    cfg: RoCoFTConfig | None = getattr(model, CONFIG_ATTR, None)
    if not modules or cfg is None:
        raise AdapterError("save_adapter: the model has no RoCoFT layers; call apply_rocoft first.")
    tensors = adapter_state(model)
    if not is_main():
        return None
    expected = _expected_shapes(model)
    verify_adapter_tensors(tensors, expected, f"adapter for {path}")
    config = getattr(model, "config", None)
    module_info = {
        name: {
            "indices": m.rocoft_index.cpu().tolist(),
            **(
                {"column_indices": m.rocoft_column_index.cpu().tolist()}
                if m.rocoft_column_index is not None
                else {}
            ),
            "weight_shape": list(weight_shape(m.weight)),
            "base_checksum": m.base_checksum,
        }
        for name, m in modules.items()
    }
    path = Path(path)
    with atomic_directory(path, overwrite=overwrite, what="adapter") as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "library": "rocoft-llm"})
        reread = load_file(str(tmp / WEIGHTS_FILE))
        verify_adapter_tensors(reread, expected, f"adapter written to {path}")
        config_data = {
            "format_version": FORMAT_VERSION,
            "library": "rocoft-llm",
            "library_version": __version__,
            "base_model": base_model or getattr(config, "_name_or_path", None),
            "model_type": getattr(config, "model_type", None),
            "mode": cfg.mode,
            "rank": cfg.rank,
            **({"density": cfg.density} if cfg.density is not None else {}),
            "selection": cfg.selection,
            "seed": cfg.seed,
            "targets": sorted({n.rsplit(".", 1)[-1] for n in modules})
            if cfg.targets is None
            else list(cfg.targets),
            "train_bias": cfg.train_bias,
            "also_train": list(cfg.also_train),
            "dtype": "float32",
            # the base's bitsandbytes storage (model.quantize) the slices were trained against, or null
            "quantization": model_quantization(model),
            "tensors_sha256": sha256_file(tmp / WEIGHTS_FILE),
            "num_trainable_parameters": sum(t.numel() for t in tensors.values()),
            "modules": module_info,
            "metadata": metadata or {},
        }
        atomic_write_json(tmp / CONFIG_FILE, {**config_data, "config_sha256": config_hash(config_data)})
    return path


def read_adapter_config(path: str | Path) -> dict:
    """The validated ``adapter_config.json`` of adapter directory ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"adapter directory {path} does not exist.")
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise AdapterError(
            f"{path} has no {CONFIG_FILE}: not a rocoft-llm adapter, or a save that did not finish "
            "(the config is written last). Use a complete adapter directory."
        )
    data = read_json(cfg_path, "adapter config", "the adapter is corrupt - save it again", AdapterError)
    if not isinstance(data, dict) or data.get("format_version") not in READABLE_VERSIONS:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise AdapterError(
            f"{cfg_path}: format_version {version!r} is not supported (this rocoft-llm reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}); {RESAVE}."
        )
    if data["format_version"] >= 2 and data.get("config_sha256") != config_hash(data):
        raise AdapterError(
            f"{cfg_path} was edited after it was saved: its config_sha256 does not match its content "
            f"(indices, rank, mode or another setting changed). Adapters are not hand-editable; {RESAVE}."
        )
    if data["format_version"] == 1:
        log.warning(
            "%s: format 1 has no config hash, so edits to it cannot be detected; save it again", cfg_path
        )
    for key in ("model_type", "mode", "rank", "selection", "modules", "tensors_sha256"):
        if key not in data:
            raise AdapterError(f"{cfg_path} lacks the key {key!r}; the adapter is corrupt - {RESAVE}.")
    check_module_indices(data, cfg_path)
    return data


def adapter_rocoft_config(data: dict) -> RoCoFTConfig:
    """The :class:`RoCoFTConfig` an adapter config records (mode, rank, density, selection, ...)."""
    return RoCoFTConfig(
        mode=data["mode"],
        rank=data["rank"],
        density=data.get("density"),
        selection=data["selection"],
        targets=data.get("targets"),
        train_bias=data.get("train_bias", False),
        seed=data.get("seed", 0),
        also_train=data.get("also_train", []),
    )


def module_indices(info: dict, mode: str) -> list[int] | dict[str, list[int]]:
    """One module's indices as ``apply_rocoft(indices=...)`` takes them."""
    if mode == ROW_COLUMN:
        return {"rows": info.get("indices"), "columns": info.get("column_indices")}
    return info.get("indices")


def check_module_indices(data: dict, cfg_path: Path) -> None:
    """Every module's indices agree with the config's mode, rank (or density) and its weight shape
    (count, range, distinct): the checks ``load_adapter``, ``merge`` and ``export-peft`` rely on, with
    the file and fix named."""
    mode, rank = data["mode"], data["rank"]
    if mode not in MODES or isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise AdapterError(
            f"{cfg_path}: mode {mode!r} / rank {rank!r} are not a RoCoFT mode and rank; {RESAVE}."
        )
    try:
        cfg = adapter_rocoft_config(data)
    except RoCoFTError as e:  # an invalid recorded setting is a corrupt adapter
        raise AdapterError(f"{cfg_path}: the recorded RoCoFT settings are invalid ({e}); {RESAVE}.") from None
    if not isinstance(data["modules"], dict) or not data["modules"]:
        raise AdapterError(f"{cfg_path}: 'modules' lists no adapted modules; {RESAVE}.")
    for name, info in data["modules"].items():
        shape = info.get("weight_shape") if isinstance(info, dict) else None
        keys = ("indices", "column_indices") if mode == ROW_COLUMN else ("indices",)
        lists = [info.get(k) for k in keys] if isinstance(info, dict) else [None]
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
            or not all(
                isinstance(idx, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in idx)
                for idx in lists
            )
        ):
            raise AdapterError(f"{cfg_path}: module {name} has malformed indices or weight_shape; {RESAVE}.")
        layout = (
            fused_layout(data["model_type"], name.rsplit(".", 1)[-1]) if mode in (ROW, ROW_COLUMN) else None
        )
        for idx, (kind, n, want) in zip(
            lists, index_parts(cfg, tuple(shape), len(layout.parts) if layout else 1)
        ):
            if len(idx) != want or len(set(idx)) != len(idx) or any(not 0 <= i < n for i in idx):
                raise AdapterError(
                    f"{cfg_path}: module {name} has {len(idx)} {kind} indices {idx[:8]} but mode {mode} "
                    f"{'density ' + str(cfg.density) if cfg.density else 'rank ' + str(rank)} needs {want} "
                    f"distinct ones in [0, {n}); the config was edited or is corrupt - {RESAVE}."
                )


def read_adapter_tensors(path: str | Path, data: dict | None = None) -> dict[str, torch.Tensor]:
    """The adapter's tensors, after checking the file against the sha256 in its config."""
    path = Path(path)
    data = data or read_adapter_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterError(f"{path} has no {WEIGHTS_FILE}; the adapter is incomplete - save it again.")
    if sha256_file(weights) != data["tensors_sha256"]:
        raise AdapterError(
            f"{weights} does not match the sha256 recorded in {CONFIG_FILE}: the file is truncated "
            "or was modified. Restore it from the original save."
        )
    try:
        return load_file(str(weights))
    except SafetensorError as e:
        raise AdapterError(f"{weights} cannot be read as safetensors ({e}).") from None


def _check_base(model: nn.Module, data: dict, path: Path) -> None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if data["model_type"] != model_type:
        raise AdapterError(
            f"adapter {path} was trained on a {data['model_type']!r} model but the base is "
            f"{model_type!r}; load it onto {data.get('base_model') or 'its own base model'}."
        )
    named = dict(model.named_modules())
    problems = []
    for name, info in data["modules"].items():
        module = named.get(name)
        if not isinstance(module, nn.Linear):
            problems.append(f"{name}: not an nn.Linear in the base model")
        elif list(weight_shape(module.weight)) != list(info["weight_shape"]):
            problems.append(
                f"{name}: base weight {list(weight_shape(module.weight))} != adapter's {info['weight_shape']}"
            )
    if problems:
        raise AdapterError(
            f"adapter {path} does not fit this base model ({len(problems)} mismatches, e.g. "
            f"{'; '.join(problems[:3])}). Base expected: {data.get('base_model')}."
        )


def _check_checksums(model: nn.Module, data: dict, path: Path) -> None:
    bad = []
    for name, module in rocoft_modules(model).items():
        want = data["modules"][name].get("base_checksum")
        have = module.base_checksum
        if (
            want is not None
            and have is not None
            and not math.isclose(have, want, rel_tol=CHECKSUM_RTOL, abs_tol=1e-6)
        ):
            bad.append(f"{name}: {have:.6g} vs {want:.6g}")
    if bad:
        raise AdapterError(
            f"adapter {path}: the base model's weights at the adapted rows/columns differ from the "
            f"model it was trained on ({len(bad)} modules, e.g. {bad[0]}); this is not base "
            f"{data.get('base_model')!r}. Pass check_base=False only if you know better."
        )


def load_adapter(base_model: nn.Module, path: str | Path, check_base: bool = True) -> nn.Module:
    """Apply the adapter in ``path`` to ``base_model`` (in place) and return it.

    Checks the files (hash), the architecture, every module and shape, and (``check_base``) that
    the base weights at the adapted indices are the ones the adapter was trained from.
    """
    path = Path(path)
    data = read_adapter_config(path)
    tensors = read_adapter_tensors(path, data)
    _check_base(base_model, data, path)
    mismatch = quantization_mismatch(base_model, data.get("quantization"))
    if mismatch:
        raise AdapterError(f"adapter {path}: {mismatch}.")
    cfg = adapter_rocoft_config(data)
    apply_rocoft(
        base_model, cfg, indices={n: module_indices(info, cfg.mode) for n, info in data["modules"].items()}
    )
    wrapped = set(rocoft_modules(base_model))
    if wrapped != set(data["modules"]):
        raise AdapterError(
            f"adapter {path}: modules differ from the base model's targets "
            f"(only in base: {sorted(wrapped - set(data['modules']))[:3]}, "
            f"only in adapter: {sorted(set(data['modules']) - wrapped)[:3]})."
        )
    if check_base:
        _check_checksums(base_model, data, path)
    verify_adapter_tensors(tensors, _expected_shapes(base_model), f"adapter {path}")
    params = trainable_parameters(base_model)
    with torch.no_grad():
        for name, t in tensors.items():
            params[name].copy_(t.to(params[name].dtype))
    return base_model
