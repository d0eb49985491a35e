"""RoCoFT: only the selected rows, columns, rows and columns, or entries of each targeted linear are
trained (the default method)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..errors import RoCoFTError
from .base import Method

log = logging.getLogger("rocoft_llm")


def rocoft_config(recipe):
    """The recipe's ``rocoft:`` section is a RoCoFTConfig already (one declaration); a copy, so a model
    never shares its config object with the recipe."""
    from ..rocoft.config import RoCoFTConfig

    return RoCoFTConfig.model_validate(recipe.rocoft.model_dump())


def trainable_shapes(cfg, s) -> list[tuple[int, ...]]:
    """Shapes of the trainable slices RoCoFT gives one linear of shape ``s`` (a
    :class:`~rocoft_llm.config.model_shapes.LinearShape`) under ``cfg`` (a ``rocoft:`` section):
    what validate counts and the memory estimate sizes (biases not included)."""
    from ..rocoft.apply import index_parts
    from ..rocoft.placement import slice_shapes

    shape = (s.out_features, s.in_features)
    parts = index_parts(cfg, shape, s.row_parts) if cfg.density or cfg.mode != "entries" else []
    counts = [n for _, _, n in parts]
    return slice_shapes(cfg.mode, shape, *counts) if counts else []


class RoCoFTMethod(Method):
    name = "rocoft"
    output_folder = "adapter"
    section = "rocoft"
    resume_keys = (
        "mode",
        "rank",
        "density",
        "selection",
        "targets",
        "train_bias",
        "seed",
        "indices_file",
        "also_train",
    )
    mergeable = True

    def needs_calibration(self, recipe) -> bool:
        from ..rocoft.selection import SCORED_SELECTIONS

        return recipe.rocoft.selection in SCORED_SELECTIONS and not recipe.rocoft.indices_file

    def prepare(self, model, recipe, calibration=None):
        from ..rocoft.apply import apply_rocoft

        apply_rocoft(model, rocoft_config(recipe), calibration=calibration)
        return model

    def save(self, module, target: Path, recipe, metadata: dict) -> None:
        from ..rocoft.adapter import save_adapter

        save_adapter(module, target, base_model=recipe.model.name_or_path, overwrite=True, metadata=metadata)

    def merge_after_training(self, recipe, out: Path) -> None:
        from ..distributed import is_main
        from ..rocoft.merge_dir import merge_to_directory

        if not is_main():
            return
        base = Path(recipe.model.name_or_path)
        has_weights = not base.is_dir() or any(base.glob("*.safetensors"))
        if recipe.model.random_init or not has_weights:
            log.warning(
                "output.merge: the base %s has no weights on disk (random init); skipping the merged model",
                recipe.model.name_or_path,
            )
            return
        merge_to_directory(
            recipe.model.name_or_path,
            out / self.output_folder,
            out / "merged",
            overwrite=True,
            progress=False,
        )

    def load(self, folder: Path, load_base, dtype: str, device: str):
        from ..io_utils import sha256_file
        from ..rocoft.adapter import WEIGHTS_FILE, load_adapter
        from ..rocoft.apply import merge_rocoft, rocoft_modules

        net = load_base()
        load_adapter(net, folder)
        if not rocoft_modules(net):
            raise RoCoFTError(
                f"adapter {folder} did not apply to its base model; refusing to evaluate the bare base model."
            )
        merge_rocoft(net)
        return net, sha256_file(folder / WEIGHTS_FILE)

    def peft_export_problem(self, run_dir: Path) -> str | None:
        return None

    def full_precision_problem(self, folder: Path) -> str | None:
        return (
            f"{folder} is a RoCoFT adapter, whose slices replace the quantized base's rows/columns and "
            "are checked against them; serve it on the full-precision base as a LoRA of deltas: "
            f"`rocoft-llm export-peft {folder} --out OUT`, then `rocoft-llm eval --adapter OUT "
            "--full-precision-base ...`"
        )

    def check(self, recipe, problems: list[str], warnings: list[str]) -> None:
        from ..rocoft.config import combination_problems

        r = recipe
        problems.extend(combination_problems(r.rocoft, prefix="rocoft."))
        if self.needs_calibration(r) and not r.data.train:
            problems.append(
                f"rocoft.selection: {r.rocoft.selection!r} is Wanda-scored and needs calibration data: set "
                "data.train or rocoft.indices_file (from `rocoft-llm select`)"
            )
        if r.train.weight_decay > 0:
            warnings.append(
                f"train.weight_decay {r.train.weight_decay}: on RoCoFT slices AdamW decays the selected "
                "pretrained weights themselves (slice = W0[idx] + update), not just the update"
            )

    def check_shapes(self, recipe, config, arch, shapes: dict, targets: list[str], result) -> None:
        r = recipe
        if r.rocoft.train_bias and arch is not None and not arch.has_bias:
            result.warnings.append(
                f"rocoft.train_bias: {config.model_type} linears have no bias; the setting has no effect"
            )
        from ..rocoft.apply import index_parts

        rank, mode = r.rocoft.rank, r.rocoft.mode
        n_layers, too_small = {}, []
        for t in targets:
            s = shapes[t.rsplit(".", 1)[-1]]
            shape = (s.out_features, s.in_features)
            parts = index_parts(r.rocoft, shape, s.row_parts) if r.rocoft.density or mode != "entries" else []
            for kind, n, _ in parts:
                limit = n // s.row_parts if kind == "row" else n
                if kind != "entries" and rank > limit:
                    fused = " per fused part" if s.row_parts > 1 and kind == "row" else ""
                    dim = "output rows" if kind == "row" else "input columns"
                    too_small.append((limit, f"the {dim} of {t} ({limit}{fused})"))
            per = sum(math.prod(dims) for dims in trainable_shapes(r.rocoft, s))
            if r.rocoft.train_bias and arch is not None and arch.has_bias:
                per += s.out_features
            n_layers[t] = per
        if too_small:
            result.problems.append(
                f"rocoft.rank: {rank} exceeds {', '.join(t for _, t in too_small)} in "
                f"{r.model.name_or_path}; use rank <= {min(lim for lim, _ in too_small)}"
            )
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
        if layers:
            result.derived["trainable_parameters"] = layers * sum(n_layers.values())
