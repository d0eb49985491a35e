"""The key-value metadata of a source GGUF file, kept beside its converted HF directory so that a
GGUF written back from it (``export-gguf``) carries the source's tokenizer and ``general.*`` fields.

Why: llama.cpp tokenizes with the GGUF's own ``tokenizer.ggml.*`` fields (its ``pre`` names the
pre-tokenizer regex, e.g. ``smollm``). A tokenizer rebuilt from ``tokenizer.json`` loses that name
and llama.cpp falls back to a default regex, so a finetuned model exported back to GGUF should keep
the fields its base arrived with. The model's shape (``<arch>.*``) is always written from its
config instead: it must describe the tensors actually written.

``gguf_source_metadata.json`` holds ``{key: {"type", "sub_type", "value"}}`` with the ``gguf``
package's value-type names, so every value is written back with its original type.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import atomic_write_json

METADATA_FILE = "gguf_source_metadata.json"
KEPT_PREFIXES = ("general.", "tokenizer.")
#: written by the exporter itself (they describe the new file, not the source)
NOT_KEPT = ("general.architecture", "general.file_type", "general.quantization_version", "general.alignment")


def read_gguf_metadata(path: str | Path) -> dict[str, dict]:
    """The source file's ``general.*`` and ``tokenizer.*`` fields with their GGUF value types."""
    from gguf import GGUFReader, GGUFValueType

    try:
        fields = GGUFReader(str(path)).fields
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad file
        raise RoCoFTError(
            f"{path}: cannot read its GGUF metadata ({type(e).__name__}: {e}); pass a complete .gguf "
            "file (download it again if it may be truncated)."
        ) from None
    kept = {}
    for key, field in fields.items():
        if not key.startswith(KEPT_PREFIXES) or key in NOT_KEPT or not field.types:
            continue
        main = field.types[0]
        sub = field.types[-1] if main == GGUFValueType.ARRAY else None
        if main == GGUFValueType.ARRAY and len(field.types) > 2:
            continue  # nested arrays: no tokenizer or general field uses them
        value = field.contents()
        kept[key] = {"type": main.name, "sub_type": sub.name if sub is not None else None, "value": value}
    return kept


def save_metadata(model_dir: str | Path, metadata: dict[str, dict]) -> Path:
    """Write ``metadata`` as ``model_dir/gguf_source_metadata.json`` (atomically)."""
    path = Path(model_dir) / METADATA_FILE
    atomic_write_json(path, metadata)
    return path


def load_metadata(model_dir: str | Path) -> dict[str, dict] | None:
    """The kept source metadata of a model directory, or None when it did not come from a GGUF file."""
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RoCoFTError(
            f"{path} is unreadable ({e}); delete it (the export then rebuilds the tokenizer from "
            "tokenizer.json) or convert the source GGUF again."
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and {"type", "value"} <= set(v) for v in data.values()
    ):
        raise RoCoFTError(
            f"{path} is not a GGUF metadata file written by rocoft-llm; delete it or convert again."
        )
    return data


def write_metadata(writer, metadata: dict[str, dict]) -> None:
    """Add every kept field to a ``gguf.GGUFWriter`` with its original value type."""
    from gguf import GGUFValueType

    for key, field in metadata.items():
        sub = GGUFValueType[field["sub_type"]] if field.get("sub_type") else None
        writer.add_key_value(key, field["value"], GGUFValueType[field["type"]], sub_type=sub)


def token_count(metadata: dict[str, dict]) -> int | None:
    """Length of the kept ``tokenizer.ggml.tokens`` list (None when the source had none)."""
    tokens = metadata.get("tokenizer.ggml.tokens")
    return len(tokens["value"]) if tokens else None
