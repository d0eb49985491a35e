"""Whether what a recipe names can be reached from this machine: the model config, the tokenizer and
every data source. Checked without the network, so that ``validate`` answers at once on an air-gapped
node: a local directory must hold the files, a Hub id must be in the local Hugging Face cache, and a
dataset id must be found where it is read from (the LLM-Adapters folder, or ``data.hub_dir``). What
cannot be checked this way is a warning - an error under ``validate --strict`` - naming the key, the
value and how to make it checkable.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.catalog import canonical_dataset_id, dataset_entry, mixture_entry
from ..data.file_split import parse_file_split_spec
from ..data.heldout_split import parse_split_spec
from ..data.sources import LLM_ADAPTERS_ENV, llm_adapters_candidates
from .schema import Recipe

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
UPSTREAM = "github.com/AGI-Edgerunners/LLM-Adapters"
HUB_FILES = (".json", ".jsonl", ".parquet", ".csv")


def looks_like_path(name: str) -> bool:
    """A local path rather than a Hub id ("org/name"): absolute, relative (./, ../, ~), or 2+ slashes."""
    return name.startswith(("/", ".", "~")) or name.count("/") >= 2


def in_hf_cache(repo_id: str, *files: str) -> bool:
    """Whether one of ``files`` of Hub repository ``repo_id`` is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    for name in files:
        try:
            if isinstance(try_to_load_from_cache(repo_id, name), str):
                return True
        except Exception:  # noqa: BLE001 - an id the Hub would refuse is simply not cached
            continue
    return False


def _not_cached(key: str, name: str, what: str) -> str:
    return (
        f"{key}: {name} ({what}) is neither a local path nor in the local Hugging Face cache; validate "
        "does not use the network, so whether this machine can download it (network, access to a gated "
        f"model, HF_TOKEN) is not checked - download it first (`huggingface-cli download {name}`) or "
        "point the key at a local directory"
    )


def model_warnings(r: Recipe) -> list[str]:
    """The model config and the tokenizer: a local directory with their files, or a cached Hub id."""
    out = []
    name, tok = r.model.name_or_path, r.model.tokenizer or r.model.name_or_path
    local_model, local_tok = Path(name).expanduser(), Path(tok).expanduser()
    # a missing local path is model_dir_problem's (it names the command that writes the directory)
    model_missing = (
        not local_model.exists() and not looks_like_path(name) and not in_hf_cache(name, "config.json")
    )
    tok_missing = (
        not local_tok.exists() and not looks_like_path(tok) and not in_hf_cache(tok, *TOKENIZER_FILES)
    )
    if model_missing and tok_missing and tok == name:
        return [_not_cached("model.name_or_path", name, "its config, weights and tokenizer")]
    if model_missing:
        what = "its config" if r.model.random_init else "its config and weights"
        out.append(_not_cached("model.name_or_path", name, what))
    key = "model.tokenizer" if r.model.tokenizer else "model.name_or_path"
    if tok_missing:
        out.append(_not_cached(key, tok, "its tokenizer"))
    elif local_tok.is_dir() and not any((local_tok / f).is_file() for f in TOKENIZER_FILES):
        out.append(
            f"{key}: {tok} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); set model.tokenizer to "
            "a directory or Hub id that has them"
        )
    return out


def _hub_problem(key: str, name: str, members: list[str], split: str, hub_dir: str | None) -> str | None:
    if not hub_dir:
        return (
            f"{key}: {name!r} is read from the Hugging Face Hub ({', '.join(members)}), which validate does "
            f"not contact; set data.hub_dir to offline copies (DIR/<id>/{split}.jsonl) to check it here"
        )
    missing = []
    for member in members:
        split_name = dataset_entry(member).hub.get(f"{split}_split", split)
        folder = Path(hub_dir).expanduser() / member
        if not any(p.suffix in HUB_FILES for p in folder.glob(f"{split_name}.*")):
            missing.append(f"{folder}/{split_name}.jsonl")
    if missing:
        return f"{key}: {name!r} needs {', '.join(missing)} under data.hub_dir, which do not exist"
    return None


def _no_llm_adapters_dir(key: str, wanted: list[tuple[str, str]]) -> str:
    """One warning for every dataset id of ``key`` that needs LLM-Adapters' files when no folder is set."""
    names = ", ".join(repr(name) for name, _ in wanted)
    files = ", ".join(relative for _, relative in wanted)
    return (
        f"{key}: {names} {'is' if len(wanted) == 1 else 'are'} read from LLM-Adapters' {files}, but "
        f"neither data.llm_adapters_dir nor ${LLM_ADAPTERS_ENV} is set; clone {UPSTREAM} and set "
        "data.llm_adapters_dir to its folder (or its dataset/ folder)"
        + (" - `eval` takes it as --llm-adapters-dir" if key.startswith("eval") else "")
    )


def _llm_adapters_problem(key: str, name: str, relative: str, root: str) -> str | None:
    looked = llm_adapters_candidates(Path(root).expanduser(), relative)
    if not any(c.is_file() for c in looked):
        return (
            f"{key}: {name!r} needs LLM-Adapters' {relative}, not found (looked for "
            f"{', '.join(map(str, looked))}); point data.llm_adapters_dir at a clone of {UPSTREAM}"
        )
    return None


def data_warnings(r: Recipe) -> list[str]:
    """Every dataset id of data.train, eval.tasks and eval.nll_data, found where it is read from. Local
    files are read by the other checks; names that are neither are reported there too."""
    out, unset = [], {}
    root = r.data.llm_adapters_dir or os.environ.get(LLM_ADAPTERS_ENV)
    nll = [r.eval.nll_data] if r.eval.nll_data else []
    for key, names, key_split in (
        ("data.train", r.data.train, "train"),
        ("eval.tasks", r.eval.tasks, "test"),
        ("eval.nll_data", nll, "test"),
    ):
        for name in names:
            if Path(name).exists() or parse_file_split_spec(name):
                continue
            part = parse_split_spec(name)
            # a split part (boolq:train) is cut from the LLM-Adapters test file, whatever data.source says
            dataset, split = (part[0], "test") if part else (name, key_split)
            found = canonical_dataset_id(dataset)
            if found is None:
                continue
            mix = mixture_entry(found)
            from_hub = not part and (
                (key == "data.train" and r.data.source == "hub") or (mix is not None and mix.hub_only)
            )
            if from_hub:
                members = list(mix.members) if mix else [found]
                problem = _hub_problem(key, name, members, "train" if mix else split, r.data.hub_dir)
            else:
                folder = None if mix else dataset_entry(found).llm_adapters_dir
                relative = mix.llm_adapters_file if mix else folder and f"{folder}/{split}.json"
                if not relative:  # not an LLM-Adapters file: reading it says how to get it
                    continue
                if root is None:
                    unset.setdefault(key, []).append((name, relative))
                    continue
                problem = _llm_adapters_problem(key, name, relative, root)
            if problem:
                out.append(problem)
    return out + [_no_llm_adapters_dir(key, wanted) for key, wanted in unset.items()]


def reachability_warnings(r: Recipe) -> list[str]:
    return model_warnings(r) + data_warnings(r)
