"""``rocoft-llm prepare``: sources -> validated records -> reports -> tokenized dataset, cached.

Output directory: ``records.jsonl`` (the kept records, with their source), ``tokenized/`` (the
layout of ``datasets.save_to_disk``, read by ``datasets.load_from_disk``) and ``manifest.json``
(written last: sources with hashes, counts, drops, truncations, token-length statistics,
template, tokenizer, contamination findings).

Memory does not grow with the input: data files are parsed one record at a time, in two passes
(:mod:`.source_pass`: check everything, then write), and the tokens go to disk batch by batch
(:mod:`.tokenize_stream`).

The directory is keyed by a hash of every input (source bytes, converter version, template,
tokenizer, cutoff, options). A file lock makes concurrent ranks wait while one prepares (its
file is removed when the holder is done, success or failure); the next run with the same inputs
is a cache hit; a directory holding OTHER inputs is never reused or overwritten unless asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import atomic_directory, atomic_write_json, check_writable, read_json, sha256_file
from ..locks import held_lock
from ..ownership import check_not_a_file, check_replaceable, target_path
from ..version import __version__
from .chat_template import bind_chat
from .converters import CONVERTER_VERSION
from .reports import contamination_report, local_test_sets, test_question_sets
from .settings import PrepareOptions
from .source_pass import check_sources, kept_records
from .sources import Source, resolve_source
from .templates import get_template
from .tokenize import as_row, check_eos, encode_options, tokenizer_fingerprint
from .tokenize_stream import write_tokenized

log = logging.getLogger("rocoft_llm")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def default_cache_root() -> Path:
    """``$ROCOFT_CACHE/prepared`` (default ``~/.cache/rocoft-llm/prepared``)."""
    return Path(os.environ.get("ROCOFT_CACHE", Path.home() / ".cache" / "rocoft-llm")) / "prepared"


def cache_key(sources: list[Source], opts: PrepareOptions, template, tok_fp: str) -> str:
    """Hash of every input of a prepared directory - its manifest's contamination report included: the test
    sets it was checked against (which files, with their bytes)."""
    tests = local_test_sets(opts.test_dir or opts.llm_adapters_dir)
    parts = {
        "contamination_test_sets": {
            task: [str(path.resolve()), sha256_file(path)] for task, path in tests.items()
        },
        "manifest_version": MANIFEST_VERSION,
        "converter_version": CONVERTER_VERSION,
        "sources": [s.fingerprint() for s in sources],
        "template": [template.train, template.prompt],
        "tokenizer": tok_fp,
        "cutoff_len": opts.cutoff_len,
        "train_on_inputs": opts.train_on_inputs,
        "add_eos": opts.add_eos,
        "overlength": opts.overlength,
        "bad_records": opts.bad_records,
    }
    if template.is_chat:  # keys of other templates stay as they were (their caches stay valid)
        parts["chat_template"] = template.chat
    if opts.format != "auto":
        parts["format"] = opts.format
    if not opts.train_on_inputs and not template.is_chat:  # masks since the common-prefix rule
        parts["prompt_mask"] = "common-prefix"
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def read_manifest(out: Path) -> dict | None:
    """The manifest of a COMPLETE prepared directory, or None; a partial one is an error."""
    path = out / MANIFEST
    if not out.exists():
        return None
    if not path.is_file():
        raise RoCoFTError(
            f"{out} exists but has no {MANIFEST}: a partial or foreign directory. Remove it, or pass "
            "--overwrite."
        )
    manifest = read_json(path, "manifest", f"remove {out} or pass --overwrite")
    if not manifest.get("complete"):
        raise RoCoFTError(f"{path} lacks its completion marker; remove {out} or pass --overwrite.")
    return manifest


def _load_sources(opts: PrepareOptions, progress: bool) -> list[Source]:
    specs = opts.datasets
    if progress:
        from tqdm.auto import tqdm

        specs = tqdm(specs, desc="loading/converting sources", unit="source")
    return [
        resolve_source(s, opts.split, opts.source, opts.llm_adapters_dir, opts.hub_dir, stream=True)
        for s in specs
    ]


def prepare(
    opts: PrepareOptions,
    out: str | Path | None = None,
    overwrite: bool = False,
    tokenizer=None,
    progress: bool = True,
    cache_root: str | Path | None = None,
) -> tuple[Path, dict]:
    """Prepare (or reuse) the dataset described by ``opts``; returns (directory, manifest).
    Without ``out`` the directory is ``cache_root/<key>`` (default: :func:`default_cache_root`)."""
    from ..model_loading import load_tokenizer

    if out is not None:
        out = target_path(out, "prepared data")  # once, before any check
        check_not_a_file(out, "prepared data")
        if overwrite:
            check_replaceable(out, "prepared data")  # before any tokenizing
        else:
            read_manifest(out)  # a foreign or partial directory is refused before any tokenizing
    place = out if out is not None else target_path(cache_root or default_cache_root(), "prepared-data cache")
    check_writable(place, "prepared data")
    if not opts.datasets:
        raise RoCoFTError("no datasets to prepare: pass --dataset NAME|PATH (data.train in a recipe).")
    tokenizer = tokenizer or load_tokenizer(opts.tokenizer_path)
    check_eos(tokenizer, opts.add_eos)
    template = bind_chat(get_template(opts.template), tokenizer, opts.chat_template)
    tok_fp = tokenizer_fingerprint(tokenizer)
    sources = _load_sources(opts, progress)
    key = cache_key(sources, opts, template, tok_fp)
    tests = test_question_sets(opts.test_dir or opts.llm_adapters_dir)
    source_info, overlaps = check_sources(sources, opts, template, tests)  # every record problem, first
    out = Path(out) if out else Path(cache_root or default_cache_root()) / key[:20]
    out.parent.mkdir(parents=True, exist_ok=True)
    with held_lock(out.parent / f".{out.name}.lock"):
        existing = None if overwrite else read_manifest(out)
        if existing is not None and existing.get("key") != key:
            raise RoCoFTError(
                f"{out} holds a dataset prepared from different inputs (key {existing.get('key', '?')[:12]} "
                f"!= {key[:12]}); choose another --out or pass --overwrite."
            )
        if existing is not None:
            log.info("cache hit: %s already holds this prepared dataset", out)
            return out, existing
        report = contamination_report(sources, tests, overlaps)
        manifest = _build(
            sources, source_info, report, opts, template, tokenizer, tok_fp, key, out, overwrite, progress
        )
    return out, manifest


def _build(
    sources, source_info, report, opts, template, tokenizer, tok_fp, key, out, overwrite, progress
) -> dict:
    """Pass 2 over the sources (:func:`.source_pass.kept_records`): ``records.jsonl`` and the tokenized
    dataset written as the records come, then the manifest, all in a temporary directory renamed into
    place."""
    started = time.time()
    options = encode_options(tokenizer, template, opts.cutoff_len, opts.train_on_inputs, opts.add_eos)
    with atomic_directory(out, overwrite=overwrite, what="prepared data") as tmp:
        with open(tmp / "records.jsonl", "w") as f:

            def rows():
                for record in kept_records(sources, opts):
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
                    yield as_row(record, keep_source=True)

            stats = write_tokenized(
                rows(), tmp / "tokenized", options, opts.overlength, opts.num_proc, True, progress
            )
        manifest = {
            "format_version": MANIFEST_VERSION,
            "library_version": __version__,
            "key": key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "split": opts.split,
            "origin": opts.source,
            "sources": source_info,
            "template": {
                "name": template.name,
                "train": template.train,
                "prompt": template.prompt,
                **({"chat": template.chat} if template.is_chat else {}),
            },
            "tokenizer": {
                "name_or_path": str(opts.tokenizer_path),
                "fingerprint": tok_fp,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
            },
            "cutoff_len": opts.cutoff_len,
            "train_on_inputs": opts.train_on_inputs,
            "add_eos": opts.add_eos,
            "bad_records": opts.bad_records,
            **stats,
            "contamination": report,
            "seconds": round(time.time() - started, 2),
            "complete": True,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    log.info("prepared %d examples from %d source(s) into %s", stats["examples"], len(sources), out)
    return manifest


def load_prepared(path: str | Path):
    """(tokenized dataset, manifest) of a complete prepared directory."""
    import datasets

    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        raise RoCoFTError(f"prepared data directory {path} does not exist; run `rocoft-llm prepare` first.")
    return datasets.load_from_disk(str(path / "tokenized")), manifest


def summarize_manifest(path, manifest: dict) -> str:
    """The human summary `prepare` prints: counts, lengths, drops, the math quirk, contamination."""
    lines = [
        f"prepared data: {path}",
        f"  examples: {manifest['examples']:,}   trained tokens: "
        f"{manifest['trained_tokens']:,}   token length: {manifest['token_lengths']}",
        f"  over-length (> {manifest['cutoff_len']} tokens): {manifest['overlength']}",
    ]
    for s in manifest["sources"]:
        quirk = s.get("math_quirk") or {}
        lines.append(
            f"  source {s['name']} ({s['kind']}): {s['records']:,} records, kept {s['kept']:,}, drops "
            f"{s['drops'] or 'none'}"
            + (
                f", rationale's final answer != gold answer in "
                f"{quirk['rationale_final_answer_disagrees']:,}/{quirk['checked']:,}"
                " (gold = answer, always)"
                if quirk
                else ""
            )
            + (
                f", ignored fields {s['ignored_fields']} (not part of the {s.get('format')} format)"
                if s.get("ignored_fields")
                else ""
            )
        )
    for w in manifest["contamination"]["warnings"]:
        lines.append(f"  WARNING: {w}")
    return "\n".join(lines)
