"""Where records come from: an LLM-Adapters JSON file or checkout, or an original dataset through
``datasets`` (a Hub id online, a local file or directory offline) run through its converter.

Every source reports what it read (files and their sha256), so manifests and cache keys can say
exactly which bytes a prepared dataset came from.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import sha256_file
from .catalog import canonical_dataset_id, dataset_entry, load_catalog, mixture_entry
from .converters import CONVERTER_VERSION, convert_rows
from .file_split import file_part_problem, file_split_fingerprint, parse_file_split_spec, split_file_records
from .heldout_split import (
    parse_split_spec,
    split_fingerprint,
    split_name,
    split_records,
    split_suffix_problem,
)
from .records import RecordFile, read_json_array

LLM_ADAPTERS_ENV = "ROCOFT_LLM_ADAPTERS_DIR"


@dataclass
class Source:
    """Records of one source plus provenance."""

    name: str
    records: list | RecordFile  # a RecordFile is read from its file each time it is iterated
    kind: str  # "llm_adapters_file" | "hub" | "hub_mixture"
    answer_spec: dict
    files: dict[str, str] = field(default_factory=dict)  # path or id -> sha256 / fingerprint
    dataset_id: str | None = None
    members: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.kind}|{self.name}|{CONVERTER_VERSION}".encode())
        for k in sorted(self.files):
            h.update(f"{k}={self.files[k]}".encode())
        return h.hexdigest()


def _llm_adapters_root(root: str | None) -> Path | None:
    root = root or os.environ.get(LLM_ADAPTERS_ENV)
    return Path(root) if root else None


def llm_adapters_candidates(root: Path, relative: str) -> list[Path]:
    """Where ``relative`` (``gsm8k/test.json``, ``ft-training_set/math_10k.json``) may be: ``root`` is a
    checkout of github.com/AGI-Edgerunners/LLM-Adapters (test sets in ``dataset/``, training sets in
    ``ft-training_set/``), its ``dataset/`` folder (training sets beside it), or a flat copy of both."""
    found = [root / relative, root / "dataset" / relative]
    if root.name == "dataset":
        found.append(root.parent / relative)
    return found


def _find_llm_adapters_file(root: Path, relative: str) -> Path | None:
    """The first of :func:`llm_adapters_candidates` that exists."""
    return next((c for c in llm_adapters_candidates(root, relative) if c.is_file()), None)


def _answer_spec_for(name: str) -> dict:
    canonical = canonical_dataset_id(name)
    datasets, _ = load_catalog()
    if canonical in datasets:
        return datasets[canonical].answer
    mix = mixture_entry(name)
    if mix is not None:
        return mix.answer or {"type": "label"}
    return {}


def _guess_dataset_id(path: Path) -> str | None:
    """The dataset id of a local file, guessed from its folder or name (for answer checks)."""
    return canonical_dataset_id(path.parent.name) or canonical_dataset_id(path.stem)


def answer_spec_for_file(path: str | Path) -> dict:
    """How the answers of local file ``path`` are checked (the catalog's rule for its guessed dataset id)."""
    guess = _guess_dataset_id(Path(path))
    return _answer_spec_for(guess) if guess else {}


def from_file(path: str | Path, name: str | None = None, stream: bool = False) -> Source:
    """A local LLM-Adapters JSON file; its dataset id (for answer checks) is guessed from its folder.
    ``stream``: its records are a :class:`RecordFile` (read as they are iterated, never held)."""
    path = Path(path)
    guess = name or _guess_dataset_id(path)
    spec = _answer_spec_for(guess) if guess else {}
    return Source(
        name=guess or path.stem,
        records=RecordFile(path) if stream else read_json_array(path),
        kind="llm_adapters_file",
        answer_spec=spec,
        files={str(path): sha256_file(path)},
        dataset_id=guess,
    )


def from_llm_adapters(name: str, split: str, root: str | None, stream: bool = False) -> Source:
    """A task's ``<split>.json`` or a mixture file from an LLM-Adapters checkout (or flat copy)."""
    base = _llm_adapters_root(root)
    if base is None:
        raise RoCoFTError(
            f"dataset {name!r} from LLM-Adapters needs its files: pass --llm-adapters-dir DIR "
            f"(data.llm_adapters_dir) or set {LLM_ADAPTERS_ENV}, or give a JSON file path."
        )
    mix = mixture_entry(name)
    if mix is not None:
        if not mix.llm_adapters_file:
            raise RoCoFTError(f"{name!r} is built from the original sources only; use --from hub.")
        relative = mix.llm_adapters_file
    else:
        relative = f"{dataset_entry(name).llm_adapters_dir}/{split}.json"
    path = _find_llm_adapters_file(base, relative)
    if path is None:
        raise RoCoFTError(
            f"{name!r}: {relative} not found under {base} (looked for "
            f"{', '.join(str(c) for c in llm_adapters_candidates(base, relative))}). Clone "
            "github.com/AGI-Edgerunners/LLM-Adapters (its dataset/ and ft-training_set/ folders) and pass "
            "its folder as --llm-adapters-dir."
        )
    src = from_file(path, canonical_dataset_id(name), stream)
    src.name = canonical_dataset_id(name)
    if mix is not None:
        src.members = list(mix.members)
    return src


def _load_hub_rows(entry, split: str, hub_dir: str | None):
    """Rows of the original dataset: a local file/dir when given (offline), else the Hub id."""
    import datasets

    split_name = entry.hub.get(f"{split}_split", split)
    local = Path(hub_dir) / entry.id if hub_dir else None
    try:
        if local is not None:
            files = sorted(
                p
                for p in local.glob(f"{split_name}.*")
                if p.suffix in (".json", ".jsonl", ".parquet", ".csv")
            )
            if not files:
                raise RoCoFTError(
                    f"{local}: no {split_name}.json/.jsonl/.parquet/.csv for {entry.id}; put the "
                    f"{split_name} split of {entry.hub.get('path')} there."
                )
            fmt = {".jsonl": "json"}.get(files[0].suffix, files[0].suffix.lstrip("."))
            ds = datasets.load_dataset(
                fmt, data_files={split_name: [str(f) for f in files]}, split=split_name
            )
            return ds, {str(f): sha256_file(f) for f in files}
        ds = datasets.load_dataset(entry.hub["path"], entry.hub.get("config"), split=split_name)
        return ds, {f"hub:{entry.hub['path']}/{entry.hub.get('config')}/{split_name}": ds._fingerprint}
    except RoCoFTError:
        raise
    except Exception as e:  # noqa: BLE001 - offline, unknown id, missing config
        raise RoCoFTError(
            f"cannot load {entry.id} ({entry.hub.get('path')}, split {split_name}): {type(e).__name__}: "
            f"{e}. Offline, pass --hub-dir DIR with DIR/{entry.id}/{split_name}.jsonl."
        ) from None


def from_hub(name: str, split: str, hub_dir: str | None = None) -> Source:
    """An original dataset converted to instruction records (mixtures: their members' train splits)."""
    mix = mixture_entry(name)
    if mix is not None:
        records, files = [], {}
        for member in mix.members:
            src = from_hub(member, "train", hub_dir)
            records.extend(src.records)
            files.update(src.files)
        mixture_name = "math_gold" if mix.id == "math" else mix.id
        return Source(
            name=mixture_name,
            records=records,
            kind="hub_mixture",
            answer_spec=mix.answer or {"type": "label"},
            files=files,
            dataset_id=mixture_name,
            members=list(mix.members),
        )
    entry = dataset_entry(name)
    rows, files = _load_hub_rows(entry, split, hub_dir)
    records = convert_rows(rows, entry.converter, f"{entry.id} ({split})")
    return Source(
        name=entry.id, records=records, kind="hub", answer_spec=entry.answer, files=files, dataset_id=entry.id
    )


def from_split(spec: str, llm_adapters_dir: str | None) -> Source:
    """``<dataset>:train`` / ``<dataset>:heldout``: one part of the seeded split of a test file
    (see :mod:`.heldout_split`)."""
    dataset, part = parse_split_spec(spec)
    task_id = canonical_dataset_id(dataset)
    if task_id is None or mixture_entry(task_id) is not None:
        raise RoCoFTError(
            f"{spec!r}: {dataset!r} is not a test set id ({', '.join(load_catalog()[0])}); a split "
            "needs one, e.g. boolq:train / boolq:heldout."
        )
    src = from_llm_adapters(task_id, "test", llm_adapters_dir)
    src.records = split_records(src.records, part)
    src.name = split_name(task_id, part)
    src.files = {**src.files, "split": split_fingerprint() + f" part={part}"}
    return src


def from_file_split(spec: str) -> Source:
    """``<file>.json:train|validation|test``: one part of the seeded split of a local file (see
    :mod:`.file_split`)."""
    path, part = parse_file_split_spec(spec)
    if not Path(path).is_file():
        raise RoCoFTError(
            f"{spec!r}: {path} is not a file; a split part names an existing JSON file, e.g. "
            "../shared/data/llm_adapters/ft-training_set/math_data.json:validation."
        )
    src = from_file(path)
    src.records = split_file_records(src.records, part, path)
    src.name = f"{src.name}:{part}"
    src.files = {**src.files, "split": file_split_fingerprint(part)}
    return src


def resolve_source(
    spec: str,
    split: str = "train",
    origin: str = "llm_adapters",
    llm_adapters_dir: str | None = None,
    hub_dir: str | None = None,
    stream: bool = False,
) -> Source:
    """A ``--dataset`` value: an existing JSON file, or a dataset/mixture id read from ``origin``.
    ``stream``: a whole file's records are read as they are iterated (:class:`RecordFile`)."""
    path = Path(spec)
    if path.is_file():
        return from_file(path, stream=stream)
    if path.is_dir():
        raise RoCoFTError(
            f"--dataset {path} is a directory; pass the JSON file(s) inside it (e.g. {path}/train.json)."
        )
    if parse_file_split_spec(spec):
        return from_file_split(spec)
    part_problem = file_part_problem(spec)  # a file with a split part that is not one
    if part_problem:
        raise RoCoFTError(part_problem + ".")
    suffix_problem = split_suffix_problem(spec, lambda d: canonical_dataset_id(d) is not None)
    if suffix_problem:
        raise RoCoFTError(suffix_problem + ".")
    if parse_split_spec(spec):
        return from_split(spec, llm_adapters_dir)
    if canonical_dataset_id(spec) is None:
        raise RoCoFTError(
            f"{spec!r} is neither an existing file nor a dataset id; ids: "
            f"{', '.join(load_catalog()[0])}, mixtures: {', '.join(load_catalog()[1])}."
        )
    if origin == "hub" or (mixture_entry(spec) and mixture_entry(spec).hub_only):
        return from_hub(spec, split, hub_dir)
    return from_llm_adapters(spec, split, llm_adapters_dir, stream)
