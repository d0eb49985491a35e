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

        if recipe.model.quantize:  # QLoRA: peft's preparation of a k-bit base (fp32 norms)
            from peft import prepare_model_for_kbit_training

            # checkpointing is already on when the recipe asks (build_model: non-reentrant, input
            # grads), as for every method; peft's own switch would re-enable it with its default
            # kwargs, which changed between releases (0.21: torch's reentrant default; 0.22:
            # transformers' default)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
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
            if recipe.model.quantize:
                from ..rocoft.quantized import write_quantization_record

                write_quantization_record(target, recipe.model.quantize)

    def load(self, folder: Path, load_base, dtype: str, device: str):
        from peft import PeftModel

        from ..io_utils import sha256_file
        from ..rocoft.quantized import model_quantization

        net = PeftModel.from_pretrained(load_base(), str(folder))
        # merging into a quantized base would quantize the merged weights again: keep LoRA unmerged there
        if model_quantization(net) is None:
            net = net.merge_and_unload()
        return net, sha256_file(folder / "adapter_model.safetensors")

    def peft_export_problem(self, run_dir: Path) -> str | None:
        return (
            f"{run_dir} is a LoRA run: {run_dir / self.output_folder} is already a peft LoRA directory; "
            "use it directly instead of exporting."
        )
