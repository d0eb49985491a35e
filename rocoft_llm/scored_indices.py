"""``rocoft-llm select``: compute Wanda-scored (or first/random) indices ONCE and write them to a
JSON file that recipes point to (``rocoft.indices_file``), so a distributed run never repeats the
calibration and every rank uses the same indices.

Calibration batches stream through the model; only one running sum of squares per input feature
per targeted linear is kept, so memory is the model plus O(sum of in_features) floats.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from .data.records import read_instruction_records
from .data.templates import get_template
from .io_utils import atomic_write_json, sha256_file
from .rocoft.apply import RoCoFTConfig, compute_indices, find_target_linears, resolve_targets
from .version import __version__

log = logging.getLogger("rocoft_llm")
INDICES_FORMAT_VERSION = 1


def calibration_batches(
    records: list[dict],
    tokenizer,
    template: str = "llm_adapters",
    max_length: int = 256,
    batch_size: int = 4,
    pad_token_id: int = 0,
) -> Iterator[dict]:
    """Right-padded batches (input_ids, attention_mask) of the records' training texts."""
    tmpl = get_template(template)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else pad_token_id
    for start in range(0, len(records), batch_size):
        texts = [
            tmpl.render_train(r["instruction"], r["output"], r.get("input", ""))
            for r in records[start : start + batch_size]
        ]
        encoded = [tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in texts]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
            mask[i, : len(e)] = 1
        yield {"input_ids": ids, "attention_mask": mask}


def select_to_file(
    model,
    tokenizer,
    calibration_file: str | Path,
    out: str | Path,
    cfg: RoCoFTConfig,
    model_name: str,
    num_batches: int = 32,
    batch_size: int = 4,
    max_length: int = 256,
    template: str = "llm_adapters",
) -> dict:
    """Compute indices for ``model`` on calibration records and write them to ``out`` (JSON): the path
    :func:`~.io_utils.check_output_file` returned (the command checks it before loading the model)."""
    records = read_instruction_records(calibration_file)
    batches = list(
        itertools.islice(
            calibration_batches(records, tokenizer, template, max_length, batch_size), num_batches
        )
    )
    n_tokens = int(sum(b["attention_mask"].sum() for b in batches))
    linears = find_target_linears(model, resolve_targets(model, cfg))
    indices = compute_indices(model, linears, cfg, calibration=batches, progress=True)
    result = {
        "format_version": INDICES_FORMAT_VERSION,
        "library_version": __version__,
        "model": model_name,
        "model_type": getattr(model.config, "model_type", None),
        "mode": cfg.mode,
        "rank": cfg.rank,
        "selection": cfg.selection,
        "seed": cfg.seed,
        "targets": list(resolve_targets(model, cfg)),
        "calibration": {
            "file": str(calibration_file),
            "sha256": sha256_file(calibration_file),
            "batches": len(batches),
            "batch_size": batch_size,
            "max_length": max_length,
            "tokens": n_tokens,
            "template": template,
        },
        "modules": {
            name: idx.tolist() if columns is None else {"rows": idx.tolist(), "columns": columns.tolist()}
            for name, (idx, columns) in indices.items()
        },
    }
    result["indices_sha256"] = hashlib.sha256(repr(sorted(result["modules"].items())).encode()).hexdigest()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    log.info(
        "wrote %s: %d modules, %s selection on %d calibration tokens",
        out,
        len(indices),
        cfg.selection,
        n_tokens,
    )
    return result
