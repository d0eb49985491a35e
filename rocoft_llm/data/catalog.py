"""The dataset catalog (catalog.yaml beside this module, shipped in the package) and canonical ids with their aliases.

Ids are matched case-insensitively; aliases (ARC-Easy, social_i_qa, AQuA, math_10k ...) map to
the canonical lowercase id that data preparation and evaluation share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import yaml

from ..errors import RoCoFTError
from ..shipped import read_shipped_text


@dataclass(frozen=True)
class DatasetEntry:
    id: str
    family: str
    converter: str
    answer: dict
    max_new_tokens: int
    llm_adapters_dir: str | None = None
    hub: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    contaminated_by: tuple[str, ...] = ()
    #: what the hub id, config, splits and fields were checked against (the dataset's card or repo)
    checked: str = ""


@dataclass(frozen=True)
class MixtureEntry:
    id: str
    members: tuple[str, ...]
    llm_adapters_file: str | None = None
    aliases: tuple[str, ...] = ()
    answer: dict = field(default_factory=dict)
    hub_only: bool = False


@lru_cache(maxsize=1)
def load_catalog() -> tuple[dict[str, DatasetEntry], dict[str, MixtureEntry]]:
    raw = yaml.safe_load(read_shipped_text("data", "catalog.yaml"))
    mixtures_raw = raw.pop("mixtures", {})
    datasets = {
        k: DatasetEntry(
            id=k,
            **{
                **v,
                "aliases": tuple(v.get("aliases", ())),
                "contaminated_by": tuple(v.get("contaminated_by", ())),
            },
        )
        for k, v in raw.items()
    }
    mixtures = {
        k: MixtureEntry(id=k, **{**v, "members": tuple(v["members"]), "aliases": tuple(v.get("aliases", ()))})
        for k, v in mixtures_raw.items()
    }
    return datasets, mixtures


def _alias_map() -> dict[str, str]:
    datasets, mixtures = load_catalog()
    out = {}
    for entry in list(datasets.values()) + list(mixtures.values()):
        out[entry.id.lower()] = entry.id
        for alias in entry.aliases:
            out[alias.lower()] = entry.id
    return out


def canonical_dataset_id(name: str) -> str | None:
    """The canonical id of a dataset or mixture name/alias (any case), or None."""
    return _alias_map().get(name.strip().lower())


def all_dataset_ids() -> list[str]:
    datasets, mixtures = load_catalog()
    return list(datasets) + list(mixtures)


def dataset_entry(name: str) -> DatasetEntry:
    datasets, _ = load_catalog()
    canonical = canonical_dataset_id(name)
    if canonical not in datasets:
        raise RoCoFTError(
            f"unknown dataset {name!r}; known: {', '.join(datasets)} (aliases accepted, any case)."
        )
    return datasets[canonical]


def mixture_entry(name: str) -> MixtureEntry | None:
    _, mixtures = load_catalog()
    return mixtures.get(canonical_dataset_id(name) or "")
