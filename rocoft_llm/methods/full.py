"""Full finetuning: every weight trains (the upper reference for quality and cost)."""

from __future__ import annotations

from pathlib import Path

from .base import Method


class FullMethod(Method):
    name = "full"
    output_folder = "model"
    trains_all_weights = True

    def prepare(self, model, recipe, calibration=None):
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def save(self, module, target: Path, recipe, metadata: dict) -> None:
        from ..distributed import is_main
        from ..model_loading import load_tokenizer
        from ..rocoft.gather import gather_on_main

        state = gather_on_main(module.state_dict(keep_vars=True))  # collective: every rank calls it
        if is_main():
            module.save_pretrained(target, state_dict=state)
            load_tokenizer(recipe.model.tokenizer or recipe.model.name_or_path).save_pretrained(target)

    def load(self, folder: Path, load_base, dtype: str, device: str):
        from ..model_loading import load_model

        return load_model(str(folder), dtype=dtype, device=device), None

    def peft_export_problem(self, run_dir: Path) -> str | None:
        return (
            f"{run_dir} is a 'full' run, not a RoCoFT run: it has no RoCoFT adapter to export "
            f"(a full finetune's {self.output_folder}/ is already a plain HF model directory)."
        )
