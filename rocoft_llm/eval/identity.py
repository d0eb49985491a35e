"""Which model is evaluated - and proof of it.

``--model`` (HF dir or id), ``--adapter DIR`` (a RoCoFT adapter: applied to the base with every
check of ``load_adapter`` - architecture, shapes, file hash, base weights - then merged; or a peft
LoRA directory such as ``export-peft`` writes, merged through peft), or
``--run DIR`` (a training output: its recipe names the base, its final adapter / LoRA / full model
is used - the folder its method wrote, loaded by that method - and its data manifest supplies
contamination flags). When an adapter was asked for, the
adapted modules must exist before merging, so the base is never evaluated in its place; the
summary records the adapter's sha256. A base that was trained quantized (``model.quantize``, recorded
in the run's recipe, the RoCoFT adapter, or beside a LoRA) is loaded quantized the same way, unless
``full_precision_base`` asks for the unquantized base: what serving the adapter there costs (the
output then differs from the trained model by the base's quantization error; docs/quantization.md).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import RoCoFTError
from ..io_utils import read_json, read_yaml
from ..methods import get_method
from ..model_loading import load_model, load_tokenizer
from ..rocoft.quantized import recorded_quantization


def run_recipe(run: Path) -> dict:
    """The resolved recipe a training run wrote (its model, data template and eval defaults)."""
    path = run / "recipe.resolved.yaml"
    if not path.is_file():
        raise RoCoFTError(
            f"--run {run}: no recipe.resolved.yaml - not a rocoft-llm training output directory; pass "
            "the output.dir of `rocoft-llm train`, or use --model/--adapter."
        )
    recipe = read_yaml(
        path, "the run's resolved recipe", "pass the output.dir of a finished `rocoft-llm train`"
    )
    if not isinstance(recipe, dict) or not isinstance(recipe.get("model"), dict):
        raise RoCoFTError(
            f"{path}: not a resolved recipe (no model section); pass the output.dir of `rocoft-llm train`."
        )
    return recipe


def peft_base(folder: Path) -> str | None:
    """The base model a peft LoRA directory names (``export-peft`` output, a LoRA run's adapter), or
    None when ``folder`` is not a peft LoRA (a RoCoFT adapter has ``format_version`` instead)."""
    path = folder / "adapter_config.json"
    if not path.is_file():
        return None
    config = read_json(path, "adapter config", "export the adapter again")
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        return None
    return str(config.get("base_model_name_or_path") or "")


def load_for_eval(
    model: str | None = None,
    adapter: str | None = None,
    run: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    base_only: bool = False,
    full_precision_base: bool = False,
    template: str | None = None,
    chat_template: str | None = None,
):
    """(model, tokenizer, identity dict, contamination flags). ``base_only`` loads the run's/adapter's BASE (for before/after);
    ``full_precision_base`` loads that base unquantized although the adapter was trained on a quantized one;
    ``template`` ``chat`` checks the tokenizer's (or ``chat_template``'s) chat template before the model loads."""
    from ..rocoft.adapter import read_adapter_config

    if sum(x is not None for x in (adapter, run)) > 1:
        raise RoCoFTError("pass either --adapter or --run, not both.")
    random_init, seed, tokenizer_path, method, quantize = False, 0, None, None, None
    flags = {}
    product = Path(adapter) if adapter else None
    if run:
        run_dir = Path(run)
        recipe = run_recipe(run_dir)
        method = get_method(recipe["method"])
        model = model or recipe["model"]["name_or_path"]
        random_init, seed = recipe["model"]["random_init"], recipe["train"]["seed"]
        quantize = recipe["model"].get("quantize")  # the base is loaded as it was trained on
        tokenizer_path = recipe["model"].get("tokenizer")
        if (run_dir / "data_manifest.json").is_file():
            manifest = read_json(
                run_dir / "data_manifest.json", "data manifest", "rerun the training or remove it"
            )
            flags = manifest.get("contamination", {}).get("flagged_test_sets", {})
        product = run_dir / method.output_folder
        if not product.exists():
            raise RoCoFTError(
                f"--run {run}: {product.name}/ is missing; the run did not finish. Finish it with "
                f"`rocoft-llm train {run}/recipe.resolved.yaml train.resume=auto`."
            )
    elif product is not None and peft_base(product) is not None:
        method = get_method("lora")  # a peft LoRA directory (`rocoft-llm export-peft`, or any peft LoRA)
        model = model or peft_base(product)
        quantize = recorded_quantization(product)
    elif product is not None:
        info = read_adapter_config(product)
        method = get_method("rocoft")  # --adapter is a RoCoFT adapter directory
        model = model or info.get("base_model")
        flags = info.get("metadata", {}).get("contamination", {})
        quantize = (info.get("quantization") or {}).get("type")
    if not model:
        raise RoCoFTError(
            "pass --model (and optionally --adapter), or --run"
            + (f"; {product} does not name its base model" if product is not None else "")
            + "."
        )
    trained_on = quantize
    if full_precision_base:
        if not quantize:
            raise RoCoFTError(
                f"--full-precision-base: {run or product or model} was not trained on a quantized base "
                "(no model.quantize recorded), so its base is already full precision; drop the flag."
            )
        problem = None if method is None or base_only else method.full_precision_problem(product)
        if problem:
            raise RoCoFTError(f"--full-precision-base: {problem}.")
        quantize = None
    identity = {
        "model": str(model),
        "random_init": random_init,
        "method": method.name if method is not None and not base_only else "base",
        "adapter": None,
        "adapter_sha256": None,
        "quantize": quantize,
        "trained_on_quantize": trained_on,
    }
    tokenizer = load_tokenizer(tokenizer_path or model)
    if template == "chat":  # seconds, before minutes of model loading
        from ..data.chat_template import chat_template_text

        chat_template_text(tokenizer, chat_template)

    def load_base():
        return load_model(
            model, dtype=dtype, random_init=random_init, seed=seed, device=device, quantize=quantize
        )

    if base_only or method is None:
        return load_base().eval(), tokenizer, identity, flags
    net, sha256 = method.load(product, load_base, dtype, device)
    identity.update(adapter=str(product), adapter_sha256=sha256)
    return net.eval(), tokenizer, identity, flags
