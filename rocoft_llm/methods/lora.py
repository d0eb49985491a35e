"""LoRA through peft: the baseline RoCoFT is compared with (same data, loop and evaluation)."""

from __future__ import annotations

from pathlib import Path

from .base import Method


class LoRAMethod(Method):
    name = "lora"
    output_folder = "lora_adapter"
    section = "lora"
    resume_keys = ("r", "alpha", "targets")

    def prepare(self, model, recipe, calibration=None):
        from peft import LoraConfig, get_peft_model

        from ..architectures import default_targets

        targets = recipe.lora.targets or list(default_targets(model.config.model_type, None))
        config = LoraConfig(
            r=recipe.lora.r,
            lora_alpha=recipe.lora.alpha,
            lora_dropout=recipe.lora.dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)

    def save(self, module, target: Path, recipe, metadata: dict) -> None:
        from ..distributed import is_main
        from ..model_loading import load_tokenizer

        if is_main():
            module.save_pretrained(target)
            load_tokenizer(recipe.model.tokenizer or recipe.model.name_or_path).save_pretrained(target)

    def load(self, folder: Path, load_base, dtype: str, device: str):
        from peft import PeftModel

        from ..io_utils import sha256_file

        net = PeftModel.from_pretrained(load_base(), str(folder)).merge_and_unload()
        return net, sha256_file(folder / "adapter_model.safetensors")

    def peft_export_problem(self, run_dir: Path) -> str | None:
        return (
            f"{run_dir} is a LoRA run: {run_dir / self.output_folder} is already a peft LoRA directory; "
            "use it directly instead of exporting."
        )
