"""Files the commands read at run time, shipped inside the installed package and read with
``importlib.resources`` so that a wheel install (``pip install rocoft-llm``) works the same as a
checkout: the dataset catalog (``data/catalog.yaml``), the lm-eval task YAMLs
(``eval/lm_eval_tasks/``), the sbatch template (``train.sbatch.tmpl``), the known model shapes
(``config/known_models.json``) and the recipes with the tiny demo's assets (``recipes/``; in a
checkout the top-level ``recipes`` is a link to it).
"""

from __future__ import annotations

import logging
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RoCoFTError

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; the package supports 3.10
    from importlib.resources.abc import Traversable

log = logging.getLogger("rocoft_llm")


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


def recipe_summary(text: str) -> str:
    """The first sentence of a recipe's header comment (its leading ``#`` lines, up to a blank one)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#") or not line.lstrip("# ").strip():
            break
        lines.append(line.lstrip("#").strip())
    paragraph = " ".join(lines)
    end = re.search(r"(?<!e\.g)(?<!i\.e)[.!?](?=\s|$)", paragraph)
    return paragraph[: end.end()] if end else paragraph


def shipped_recipes() -> dict[str, str]:
    """{recipe file name: the first sentence of its header comment} for every shipped recipe."""
    out = {}
    for item in sorted(shipped("recipes").iterdir(), key=lambda t: t.name):
        if item.name.endswith(".yaml"):
            out[item.name] = recipe_summary(item.read_text(encoding="utf-8"))
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
    from .ownership import check_not_a_file, check_writable, target_path

    target = target_path(Path(dest) / "recipes", "--copy")  # once, before any check
    check_not_a_file(target, "--copy")
    check_writable(target, "--copy directory", inside=True)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise RoCoFTError(
            f"{target} already exists and is not empty; pass --overwrite to replace the shipped "
            "files in it (your other files there are kept) or choose another directory."
        )
    _copy_tree(shipped("recipes"), target)
    return target


def resolve_recipe(spec: str) -> str:
    """The recipe file ``spec`` names: ``spec`` itself when it exists; else the shipped recipe it names
    by stem (``llama2-13b-math``), file name or ``recipes/<file>`` (so that the shipped recipes work
    from any folder and from a wheel install); else an error naming ``rocoft-llm recipes``."""
    path = Path(spec).expanduser()
    if path.exists():
        return spec
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    item = shipped("recipes").joinpath(name)
    if item.is_file() and str(path.parent) in (".", "recipes"):
        found = str(item)
        text = item.read_text(encoding="utf-8")
        if "recipes/tiny/" in text and not Path("recipes/tiny").is_dir():
            log.warning(
                "%s names files under recipes/tiny/ relative to the working directory, which has none; "
                "run `rocoft-llm recipes --copy .` first, then `rocoft-llm ... recipes/%s`",
                name,
                name,
            )
        return found
    stems = ", ".join(n.rsplit(".", 1)[0] for n in shipped_recipes())
    raise RoCoFTError(
        f"recipe {spec} does not exist, and no shipped recipe is called {name.rsplit('.', 1)[0]!r}; "
        f"`rocoft-llm recipes` lists the shipped ones ({stems}) - pass one by name, e.g. "
        "`rocoft-llm validate llama2-7b-math` - and `rocoft-llm recipes --copy DIR` writes them to "
        "DIR/recipes to edit."
    )
