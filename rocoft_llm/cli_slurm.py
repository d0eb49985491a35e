"""``rocoft-llm slurm``: render (and optionally submit) a validated multi-node job for a recipe
(registered on the group in cli.py)."""

from __future__ import annotations

import click


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm slurm recipes/llama2-13b-math.yaml --nodes 2 --gpus-per-node 8 --partition gpu --time 48:00:00
  rocoft-llm slurm recipes/llama2-13b-math.yaml --nodes 2 --gpus-per-node 8 --backend fsdp --out job.sbatch --submit
  rocoft-llm slurm recipes/bloomz-7b-math.yaml --nodes 4 --gpus-per-node 8 --launcher deepspeed
  rocoft-llm slurm recipes/tiny-llama-rows.yaml --backend fsdp --nodes 2 --gpus-per-node 0 --procs-per-node 1 --submit
"""
)
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--nodes", required=True, type=click.IntRange(min=1))
@click.option(
    "--gpus-per-node",
    required=True,
    type=click.IntRange(min=0),
    help="GPUs per node, one process each; 0 = a CPU job (no GPU request; needs --procs-per-node).",
)
@click.option(
    "--procs-per-node",
    type=click.IntRange(min=1),
    help="Processes (ranks) per node for CPU jobs; default: one per GPU.",
)
@click.option("--partition")
@click.option("--time", "time_limit", default="24:00:00", show_default=True)
@click.option("--account")
@click.option(
    "--cpus-per-task", type=click.IntRange(min=1), help="Default: 8 per GPU; CPU jobs: 1 per process."
)
@click.option("--backend", type=click.Choice(["fsdp", "deepspeed", "ddp"]), help="Override dist.backend.")
@click.option(
    "--launcher",
    type=click.Choice(["torchrun", "deepspeed"]),
    default="torchrun",
    show_default=True,
    help="deepspeed = the deepspeed launcher with a generated hostfile (needs ssh + pdsh between nodes).",
)
@click.option("--log-dir", help="Default: <output.dir>/slurm-logs.")
@click.option(
    "--out", type=click.Path(dir_okay=False), help="sbatch file to write (default: <recipe>.sbatch)."
)
@click.option("--submit", is_flag=True, help="Submit with sbatch after writing.")
def slurm(
    recipe,
    overrides,
    nodes,
    gpus_per_node,
    procs_per_node,
    partition,
    time_limit,
    account,
    cpus_per_task,
    backend,
    launcher,
    log_dir,
    out,
    submit,
) -> None:
    """Render a ready SLURM job for RECIPE (validated for nodes x processes ranks); submit only with --submit."""
    from pathlib import Path

    from .slurm import Allocation, render, write_and_maybe_submit

    alloc = Allocation(
        nodes,
        gpus_per_node,
        partition,
        time_limit,
        account,
        cpus_per_task,
        launcher,
        log_dir,
        procs_per_node=procs_per_node,
    )
    text = render(recipe, alloc, list(overrides), backend)
    click.echo(write_and_maybe_submit(text, Path(out or Path(recipe).with_suffix(".sbatch").name), submit))
