"""Files the commands read at run time, shipped inside the installed package and read with
``importlib.resources`` so that a wheel install (``pip install rocoft-llm``) works the same as a
checkout: the dataset catalog (``data/catalog.yaml``), the lm-eval task YAMLs
(``eval/lm_eval_tasks/``), the sbatch template (``train.sbatch.tmpl``), the known model shapes
(``config/known_models.json``) and the recipes with the tiny demo's assets (``recipes/``; in a
checkout the top-level ``recipes`` is a link to it).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RoCoFTError

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; the package supports 3.10
    from importlib.resources.abc import Traversable


def shipped(*parts: str) -> Traversable:
    """The packaged file or folder ``rocoft_llm/<parts...>``; missing = a broken install, said so."""
    item = resources.files("rocoft_llm").joinpath(*parts)
    if not item.is_file() and not item.is_dir():
        raise RoCoFTError(
            f"rocoft_llm/{'/'.join(parts)} is missing from the installed package; "
            "reinstall rocoft-llm (pip install --force-reinstall rocoft-llm)."
        )
    return item


def read_shipped_text(*parts: str) -> str:
    return shipped(*parts).read_text(encoding="utf-8")


def shipped_recipes() -> dict[str, str]:
    """{recipe file name: its first comment line} for every shipped recipe."""
    out = {}
    for item in sorted(shipped("recipes").iterdir(), key=lambda t: t.name):
        if item.name.endswith(".yaml"):
            first = item.read_text(encoding="utf-8").splitlines()[0]
            out[item.name] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return out


def _copy_tree(src: Traversable, dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    for item in src.iterdir():
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            copied += _copy_tree(item, dest / item.name)
        else:
            with item.open("rb") as fin, open(dest / item.name, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            copied += 1
    return copied


def copy_recipes(dest: str | Path, overwrite: bool = False) -> Path:
    """Copy the shipped recipes and the tiny assets to ``dest/recipes`` (paths inside the recipes are
    relative to the working directory, so running from ``dest`` works like running in a checkout)."""
    target = Path(dest) / "recipes"
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise RoCoFTError(
            f"{target} already exists and is not empty; pass --overwrite to replace the shipped "
            "files in it (your other files there are kept) or choose another directory."
        )
    _copy_tree(shipped("recipes"), target)
    return target
