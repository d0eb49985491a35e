"""Clusters: ``slurm`` renders (and optionally submits) a validated multi-node job for a recipe;
``doctor`` checks every rank's environment before a long run."""

from __future__ import annotations

import sys

import click

from .options import RecipeFile


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
@click.argument("recipe", type=RecipeFile())
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
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
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
    overwrite,
) -> None:
    """Render a ready SLURM job for RECIPE (validated for nodes x processes ranks); submit only with --submit."""
    from pathlib import Path

    from ..io_utils import check_output_file
    from ..slurm import Allocation, render, write_and_maybe_submit

    # before rendering (which makes the log folder): an existing --out needs --overwrite
    target = check_output_file(out or Path(recipe).with_suffix(".sbatch").name, overwrite)
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
    click.echo(write_and_maybe_submit(text, target, submit))


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm doctor --out-dir runs/x
  torchrun --nproc-per-node 8 -m rocoft_llm.cli doctor --out-dir /shared/runs/x     # every rank
"""
)
@click.option(
    "--out-dir", required=True, help="The run's output directory (checked for sharing and free space)."
)
@click.option(
    "--timeout", default=120, show_default=True, type=click.IntRange(min=5), help="All-reduce timeout (s)."
)
@click.option("--min-free-gib", default=1.0, show_default=True, type=float)
def doctor(out_dir, timeout, min_free_gib) -> None:
    """Check versions, GPUs, an all-reduce over all ranks, the shared output dir and free disk."""
    from ..distributed import is_main, shutdown_distributed
    from ..doctor import run_doctor

    results = run_doctor(out_dir, timeout, min_free_gib)
    if is_main():
        for name, ok, detail in results:
            click.echo(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
        click.echo("doctor: all checks passed" if all(ok for _, ok, _ in results) else "doctor: FAILED")
    if all(ok for name, ok, _ in results if name == "all-reduce"):  # a broken group would hang the barrier
        shutdown_distributed()
    if not all(ok for _, ok, _ in results):
        sys.exit(1)
