"""The ``eval --metric nll`` command body: which models (variants), which target tokens, then
:func:`.nll_run.run_nll`. Kept apart from ``cli/evaluation.py`` so the command module stays thin."""

from __future__ import annotations

from pathlib import Path

from ..distributed import is_main
from ..errors import RoCoFTError
from .decoding import GenerationSettings
from .identity import load_for_eval, run_recipe
from .nll import NLLOptions
from .nll_run import run_nll


def nll_options(recipe: dict, targets: str, batch_size: int | None, versus: Path | None) -> NLLOptions:
    """Target tokens as the run's recipe masks them (``targets="recipe"``; response-only without a run),
    or forced to the response / the whole text. ``--versus`` must agree with the run on them."""
    data = recipe.get("data", {})
    forced = {"response": False, "all": True}.get(targets)
    if forced is None and "train_on_inputs" not in data:
        forced = False  # no run: the response, the quantity the comparison is about
    batch = (
        batch_size
        or recipe.get("eval", {}).get("batch_size")
        or GenerationSettings.model_fields["batch_size"].default  # declared once
    )
    opts = NLLOptions.from_data_section(data, batch, forced)
    if versus is not None:
        other = NLLOptions.from_data_section(run_recipe(versus).get("data", {}), batch, forced)
        if other != opts:
            raise RoCoFTError(
                f"--versus {versus}: its data options ({other}) differ from the evaluated run's ({opts}); a paired "
                "difference needs the same target tokens. Pass --nll-targets response (or all) and use runs "
                "with the same template and cutoff_len."
            )
    return opts


def nll_command(
    model_path,
    adapter,
    run_dir,
    versus_run,
    with_base,
    specs,
    targets,
    batch_size,
    limit,
    out_dir: Path,
    dtype,
    device,
    llm_adapters_dir,
    iterations,
    seed,
    recipe,
    full_precision_base: bool = False,
) -> str:
    """Build the variants (base, adapted, versus) and run them; returns the markdown table (rank 0).
    ``full_precision_base`` loads the base of the evaluated adapter or run unquantized (not --versus')."""
    versus = Path(versus_run) if versus_run else None
    opts = nll_options(recipe, targets, batch_size, versus)

    data = recipe.get("data", {})  # the prompt format the records are scored under

    def loader(model, adapt, run, base_only, full):
        def load():
            net, tok, identity, _ = load_for_eval(
                model,
                adapt,
                run,
                dtype,
                str(device),
                base_only,
                full,
                data.get("template"),
                data.get("chat_template"),
            )
            return net, tok, identity

        return load

    variants = (
        [("base", loader(model_path, adapter, run_dir, True, full_precision_base))] if with_base else []
    )
    variants.append(
        (
            "adapted" if (adapter or run_dir) else "model",
            loader(model_path, adapter, run_dir, False, full_precision_base),
        )
    )
    if versus is not None:
        variants.append(("versus", loader(None, None, str(versus), False, False)))
    table = run_nll(variants, specs, opts, out_dir, llm_adapters_dir, limit, iterations, seed, device)
    return table if is_main() else ""
