"""A training run's product, found through its method: which folder holds what it trained, and
(for ``export-peft``) the RoCoFT adapter of a run or an adapter directory."""

from __future__ import annotations

from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import read_yaml
from .registry import get_method


def peft_export_source(path: str | Path, base: str | None = None) -> tuple[Path, str | None]:
    """(adapter directory, base model named by the run's recipe or None) for a run or adapter
    directory; a run whose method has no RoCoFT adapter, an unfinished run and a run of a randomly
    initialised model are refused with the reason (unless ``base``, the saved base weights, is given)."""
    path = Path(path)
    recipe_file = path / "recipe.resolved.yaml"
    if not recipe_file.is_file():
        return path, None
    recipe = read_yaml(recipe_file, "the run's resolved recipe", "pass the output.dir of `rocoft-llm train`")
    method = get_method(recipe.get("method") if isinstance(recipe, dict) else None)
    problem = method.peft_export_problem(path)
    if problem:
        raise RoCoFTError(problem)
    adapter_dir = path / method.output_folder
    if not adapter_dir.is_dir():
        raise RoCoFTError(
            f"{path}: {adapter_dir.name}/ is missing; the run did not finish. Finish it with "
            f"`rocoft-llm train {path}/recipe.resolved.yaml train.resume=auto`."
        )
    model = recipe.get("model") or {}
    if model.get("random_init") and not base:
        raise RoCoFTError(
            f"{path} trained a randomly initialised model ({model.get('name_or_path')}): there are no base "
            "weights on disk to express the update against; pass --base with the saved base weights."
        )
    return adapter_dir, model.get("name_or_path")
