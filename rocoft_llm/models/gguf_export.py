"""A merged llama-architecture HF directory -> one ``.gguf`` file, written with the ``gguf`` package's
``GGUFWriter`` (no hand-written binary format) and its quantizer for Q8_0.

Tensor names come from ``gguf``'s own llama name map; q/k projections are permuted to llama.cpp's
rotary layout (the inverse of what transformers' GGUF loader undoes). 2-D weights are stored as the
requested type (F32, F16 or Q8_0), 1-D norms as F32.

Metadata: when the model came from a GGUF file (``convert-gguf`` / ``fetch-model`` kept its fields in
``gguf_source_metadata.json``, which ``merge`` copies) or ``metadata_from`` names one, its
``tokenizer.*`` and ``general.*`` fields are written back unchanged - llama.cpp then tokenizes the
finetuned model exactly as it did its base. Otherwise a byte-level BPE ``tokenizer.json`` (SmolLM2,
GPT-2 style) is written as the ``gpt2`` GGUF tokenizer with its special ids and chat template; other
tokenizers are left out (the file then holds the model only). The model's shape always comes from
its config. The file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import RoCoFTError
from ..io_utils import apply_umask, check_output_file, read_json, remove_stale_temporaries, temporary_prefix
from .gguf_metadata import METADATA_FILE, load_metadata, read_gguf_metadata, token_count, write_metadata

OUTTYPES = ("f32", "f16", "q8_0")
LLAMA_TYPES = ("llama",)
#: why a family of the architecture table that is not llama cannot be written by this exporter
NOT_EXPORTED = {
    "gemma3_text": "llama.cpp's gemma3 GGUF layout differs from llama's: it stores every RMSNorm weight "
    "as 1 + w (Gemma's norms scale by 1 + w), has q/k-norm and pre/post-feed-forward norm tensors with "
    "their own names, unpermuted q/k rows, and sliding-window metadata - none of which this llama "
    "writer produces",
}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: per head, interleave the two rotary halves."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise RoCoFTError(f"{model_dir} has no .safetensors weights; pass a merged model directory.")
    out = {}
    for f in files:
        out.update({k: v.astype(np.float32) for k, v in load_file(str(f)).items()})
    return out


def _add_tokenizer(writer, model_dir: Path, config: dict) -> bool:
    """The gpt2 (byte-level BPE) tokenizer of ``tokenizer.json``; False when it is another kind."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return False
    tok = json.loads(path.read_text())
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or (tok.get("pre_tokenizer") or {}).get("type") not in (
        "ByteLevel",
        "Sequence",
    ):
        return False
    vocab = dict(model["vocab"])
    special = {}
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special[added["id"]] = added["content"]
    size = max(config.get("vocab_size", 0), max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [5] * size  # UNUSED, until named below
    for text, i in vocab.items():
        tokens[i], types[i] = text, 3 if i in special else 1  # CONTROL / NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    tcfg_path = model_dir / "tokenizer_config.json"
    tcfg = json.loads(tcfg_path.read_text()) if tcfg_path.is_file() else {}
    for key, add in (
        ("bos_token", writer.add_bos_token_id),
        ("eos_token", writer.add_eos_token_id),
        ("pad_token", writer.add_pad_token_id),
    ):
        name = tcfg.get(key)
        name = name.get("content") if isinstance(name, dict) else name
        if name in vocab:
            add(vocab[name])
    single = (tok.get("post_processor") or {}).get("single") or [{}]
    writer.add_add_bos_token("SpecialToken" in single[0])  # the HF tokenizer prepends BOS
    template = model_dir / "chat_template.jinja"
    chat = template.read_text() if template.is_file() else tcfg.get("chat_template")
    if isinstance(chat, str):
        writer.add_chat_template(chat)
    return True


def source_metadata(model_dir: Path, config: dict, metadata_from: str | Path | None) -> dict | None:
    """The GGUF fields to keep (from ``metadata_from`` or the directory's kept file), checked against
    the model's vocabulary; None when there are none."""
    origin = metadata_from or model_dir / METADATA_FILE
    metadata = read_gguf_metadata(metadata_from) if metadata_from else load_metadata(model_dir)
    count = token_count(metadata or {})
    if count is not None and count != config["vocab_size"]:
        raise RoCoFTError(
            f"{origin}: its tokenizer has {count:,} tokens but {model_dir} has vocab_size "
            f"{config['vocab_size']:,}; pass the GGUF file of this model's base as --metadata-from"
            + ("" if metadata_from else f", or delete {origin} to rebuild the tokenizer from tokenizer.json")
            + "."
        )
    return metadata


def export_gguf(
    model_dir: str | Path,
    out: str | Path,
    outtype: str = "f32",
    overwrite: bool = False,
    metadata_from: str | Path | None = None,
) -> Path:
    """Write the llama model in HF directory ``model_dir`` as GGUF file ``out``; returns ``out``.
    ``metadata_from``: a .gguf whose ``tokenizer.*`` / ``general.*`` fields to keep (default: the
    fields the directory kept from its source GGUF, if any)."""
    import gguf

    if outtype not in OUTTYPES:
        raise RoCoFTError(f"--outtype {outtype!r} is not one of {', '.join(OUTTYPES)}.")
    model_dir, out = Path(model_dir), check_output_file(out, overwrite)
    config = read_json(model_dir / "config.json", "model config", "pass a merged HF model directory")
    if config.get("model_type") not in LLAMA_TYPES:
        reason = NOT_EXPORTED.get(config.get("model_type"))
        raise RoCoFTError(
            f"{model_dir}: GGUF export supports llama-architecture models only, this is model_type "
            f"{config.get('model_type')!r}{f' ({reason})' if reason else ''}; use the HF directory (or "
            "`rocoft-llm export-peft`) for it."
        )
    kept = source_metadata(model_dir, config, metadata_from)
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    n_layers = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    qtype = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
    }[outtype]
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # what a killed export left (its pid is dead)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=temporary_prefix(out), suffix=".tmp")
    os.close(fd)
    apply_umask(tmp)
    try:
        writer = gguf.GGUFWriter(tmp, "llama")
        if kept:
            write_metadata(writer, kept)
        if not kept or "general.name" not in kept:
            writer.add_name(config.get("_name_or_path") or model_dir.name)
        writer.add_context_length(config.get("max_position_embeddings", 2048))
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(n_layers)
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_rope_dimension_count(head_dim)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
        writer.add_rope_freq_base(
            float(
                (config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta") or 10000.0
            )
        )
        writer.add_vocab_size(config["vocab_size"])
        writer.add_file_type(
            {
                "f32": gguf.LlamaFileType.ALL_F32,
                "f16": gguf.LlamaFileType.MOSTLY_F16,
                "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
            }[outtype]
        )
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        if not kept or "tokenizer.ggml.model" not in kept:
            _add_tokenizer(writer, model_dir, config)
        for key, data in sorted(_tensors(model_dir).items()):
            if key.endswith("rotary_emb.inv_freq"):
                continue
            name = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise RoCoFTError(
                    f"{model_dir}: tensor {key} has no llama GGUF name; not a llama checkpoint."
                )
            if key.endswith("q_proj.weight"):
                data = _permute(data, n_head)
            elif key.endswith("k_proj.weight"):
                data = _permute(data, n_kv)
            if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(name, data.astype(np.float32))
            elif qtype == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(name, data.astype(np.float16))
            else:
                writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
