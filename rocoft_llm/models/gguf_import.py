"""GGUF -> plain HF model directory, through transformers' own GGUF loader (the ``gguf`` package).

``convert_gguf(FILE.gguf, OUT_DIR)`` dequantises a .gguf that transformers can read (llama,
gemma3, ...; k-quants too) into an fp32 model and writes ``config.json``, ``model.safetensors`` and the tokenizer (with its
chat template) - a directory that loads without ``gguf`` - plus the source's ``general.*`` and
``tokenizer.*`` fields (gguf_metadata.py), which ``export-gguf`` writes back. Nothing here parses GGUF itself: only
the 4-byte magic is looked at, so "not a GGUF file" is a clear error instead of a parser trace.

``materialize_model(name_or_path)``: a recipe whose ``model.name_or_path`` names a .gguf file is
converted ONCE into ``$ROCOFT_CACHE/models/gguf-<sha256 prefix>`` (keyed by the file's bytes;
concurrent ranks wait on a file lock) and the directory is used from then on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import atomic_directory, atomic_write_json, check_output_target, read_json, sha256_file
from .gguf_metadata import METADATA_FILE, read_gguf_metadata, save_metadata

log = logging.getLogger("rocoft_llm")
GGUF_MAGIC = b"GGUF"
MARKER = "rocoft_gguf_import.json"  # written last: a directory without it is partial


def cache_root() -> Path:
    """``$ROCOFT_CACHE/models`` (default ``~/.cache/rocoft-llm/models``)."""
    return Path(os.environ.get("ROCOFT_CACHE", Path.home() / ".cache" / "rocoft-llm")) / "models"


def is_gguf_path(name_or_path: str | os.PathLike) -> bool:
    return str(name_or_path).lower().endswith(".gguf")


def check_gguf_file(path: Path) -> None:
    """Exists, is a file, starts with the GGUF magic; otherwise a RoCoFTError naming the file."""
    if not path.is_file():
        raise RoCoFTError(
            f"GGUF file {path} does not exist; pass the path of a .gguf file (e.g. from "
            "`rocoft-llm fetch-model smollm2-135m`)."
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if head != GGUF_MAGIC:
        raise RoCoFTError(
            f"{path} is not a GGUF file (its first bytes are {head!r}, a GGUF file starts with "
            f"{GGUF_MAGIC!r}); pass a .gguf model file."
        )


def _explain(path: Path, e: Exception) -> RoCoFTError:
    """A loader failure as a user-facing error: unsupported architecture, truncated/corrupt file, or other."""
    text = f"{type(e).__name__}: {e}"
    if "architecture" in text.lower() and ("not supported" in text.lower() or "unsupported" in text.lower()):
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

        return RoCoFTError(
            f"{path}: transformers cannot read this GGUF model's architecture ({e}). Architectures "
            f"transformers' GGUF loader reads: {', '.join(sorted(GGUF_CONFIG_MAPPING))}."
        )
    size = path.stat().st_size
    return RoCoFTError(
        f"{path} ({size:,} bytes) could not be read as a GGUF model - the file is probably truncated "
        f"or corrupt ({text[:300]}). Download it again."
    )


def load_gguf(path: Path, dtype: str = "float32"):
    """(model, tokenizer) dequantised by transformers from ``path`` (checked first)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=getattr(torch, dtype)
        )
    except RoCoFTError:
        raise
    except Exception as e:  # noqa: BLE001 - the loader's many failure types become one clear message
        raise _explain(path, e) from None
    return model, tokenizer


def convert_gguf(
    gguf_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    dtype: str = "float32",
    provenance: dict | None = None,
) -> Path:
    """Write ``gguf_file`` as a plain HF directory at ``out_dir`` (atomically); returns ``out_dir``."""
    path = Path(gguf_file)
    out = check_output_target(
        out_dir, overwrite, "converted model"
    )  # normalised, replaceable, writable: before loading
    model, tokenizer = load_gguf(path, dtype)
    # save_pretrained refuses a GGUF-loaded model while it still carries the loader's quantization state
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config._name_or_path = str(out)
    with atomic_directory(out, overwrite=overwrite, what="converted model") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_metadata(tmp, read_gguf_metadata(path))
        atomic_write_json(
            tmp / MARKER,
            {
                "source": str(path),
                "source_sha256": sha256_file(path),
                "source_bytes": path.stat().st_size,
                "dtype": dtype,
                "model_type": model.config.model_type,
                "parameters": sum(p.numel() for p in model.parameters()),
                **(provenance or {}),
            },
        )
    log.info(
        "converted %s -> %s (%s, %s parameters)",
        path,
        out,
        model.config.model_type,
        f"{sum(p.numel() for p in model.parameters()):,}",
    )
    return out


def converted_marker(out: Path) -> dict | None:
    """The import marker of a complete converted directory, or None when absent."""
    marker = out / MARKER
    if not marker.is_file():
        return None
    return read_json(marker, "conversion marker", f"remove {out} and convert again")


def keep_source_metadata(out: Path, gguf_file: Path) -> None:
    """Add the source's GGUF metadata to a directory converted before it was kept (adds one file,
    touches nothing else: safe while other processes read the model)."""
    if not (out / METADATA_FILE).is_file():
        save_metadata(out, read_gguf_metadata(gguf_file))
        log.info("kept the GGUF metadata of %s in %s", gguf_file, out / METADATA_FILE)


def materialize_model(name_or_path: str) -> str:
    """``name_or_path`` unchanged, unless it names a .gguf file: then the path of its converted HF
    directory in the cache (converted on first use, reused afterwards)."""
    if not is_gguf_path(name_or_path):
        return name_or_path
    from ..locks import held_lock

    path = Path(name_or_path).expanduser()
    check_gguf_file(path)
    digest = sha256_file(path)
    out = cache_root() / f"gguf-{digest[:20]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with held_lock(str(out) + ".lock"):
        marker = converted_marker(out)
        if marker is not None and marker.get("source_sha256") == digest:
            log.info("GGUF cache hit: %s is already converted in %s", path, out)
            keep_source_metadata(out, path)
            return str(out)
        convert_gguf(path, out, overwrite=out.exists())
    return str(out)


def materialize_recipe_model(recipe):
    """The recipe with a .gguf ``model.name_or_path`` / ``model.tokenizer`` replaced by its converted
    directory (converted once, cached); other recipes are returned unchanged."""
    recipe.model.name_or_path = materialize_model(recipe.model.name_or_path)
    if recipe.model.tokenizer:
        recipe.model.tokenizer = materialize_model(recipe.model.tokenizer)
    return recipe
