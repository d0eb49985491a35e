"""``rocoft-llm slurm``: render a ready sbatch file from ``rocoft_llm/train.sbatch.tmpl`` and a recipe
(validated for the allocation's world size first); submit it only when asked. GPU clusters get
one process per GPU; CPU clusters (``gpus_per_node=0``) get ``procs_per_node`` processes per node
and no GPU request at all (a cluster without GRES rejects any ``--gpus-per-node`` line)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import load_recipe
from .errors import RoCoFTError, preview
from .io_utils import atomic_write_text
from .shipped import read_shipped_text

JOB_OVERRIDE = "train.resume=auto"  # what train.sbatch.tmpl adds to every run (keep in step)
TEMPLATE = "train.sbatch.tmpl"  # shipped inside the package, read with importlib.resources


@dataclass
class Allocation:
    nodes: int
    gpus_per_node: int
    partition: str | None = None
    time: str = "24:00:00"
    account: str | None = None
    cpus_per_task: int | None = None
    launcher: str = "torchrun"
    log_dir: str | None = None
    job_name: str | None = None
    #: processes (ranks) per node: one per GPU by default; required for CPU jobs (gpus_per_node=0)
    procs_per_node: int | None = None

    def ranks_per_node(self) -> int:
        """Processes per node, checked against the GPUs asked for."""
        if self.nodes < 1 or self.gpus_per_node < 0:
            raise RoCoFTError(
                f"--nodes {self.nodes} --gpus-per-node {self.gpus_per_node}: need >= 1 node and "
                ">= 0 GPUs per node (0 = a CPU job)."
            )
        if self.procs_per_node is not None and self.procs_per_node < 1:
            raise RoCoFTError(f"--procs-per-node {self.procs_per_node}: need >= 1 process per node.")
        if self.gpus_per_node == 0:
            if self.procs_per_node is None:
                raise RoCoFTError(
                    "--gpus-per-node 0 is a CPU job: say how many processes each node runs with "
                    "--procs-per-node N."
                )
            return self.procs_per_node
        if self.procs_per_node not in (None, self.gpus_per_node):
            raise RoCoFTError(
                f"--procs-per-node {self.procs_per_node} with --gpus-per-node {self.gpus_per_node}: "
                "a GPU job runs one process per GPU; leave --procs-per-node out (or use "
                "--gpus-per-node 0 for a CPU job)."
            )
        return self.gpus_per_node


#: Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit
TIME_FORMAT = re.compile(r"(\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE|unlimited|infinite)")
#: what an account, partition (comma list) or job name may hold: no whitespace, quotes or shell syntax
NAME_FORMAT = re.compile(r"[A-Za-z0-9_.+@,-]{1,128}")
#: a path written verbatim into an #SBATCH line (sbatch reads those lines itself, not through a shell)
SBATCH_PATH = re.compile(r"[A-Za-z0-9_./+@,:=~-]{1,4096}")


def check_sbatch_values(alloc: Allocation, log_dir: str | None) -> None:
    """Every value that lands on an ``#SBATCH`` line is checked, so none can add a line or a command."""
    if not TIME_FORMAT.fullmatch(alloc.time or ""):
        raise RoCoFTError(
            f"--time {preview(alloc.time)} is not a Slurm time limit; use MINUTES, MM:SS, HH:MM:SS, D-HH, "
            "D-HH:MM or D-HH:MM:SS (e.g. 24:00:00 or 2-00:00:00)."
        )
    for option, value in (
        ("--account", alloc.account),
        ("--partition", alloc.partition),
        ("job name", alloc.job_name),
    ):
        if value is not None and not NAME_FORMAT.fullmatch(value):
            raise RoCoFTError(
                f"{option} {preview(value)} is not a Slurm name: use 1-128 letters, digits and _ . + @ - "
                "(partitions: a comma-separated list), without spaces, newlines, quotes or shell characters."
            )
    if log_dir is not None and not SBATCH_PATH.fullmatch(log_dir):
        raise RoCoFTError(
            f"log directory {preview(log_dir)} cannot be written on an #SBATCH --output line (it holds "
            "spaces, quotes, newlines, % or shell characters); pass --log-dir with a plain path."
        )


def job_name_for(recipe_path: str) -> str:
    """``rocoft-<recipe stem>``, with anything Slurm names cannot hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.+@-]", "_", f"rocoft-{Path(recipe_path).stem}")[:128]


def render(recipe_path: str, alloc: Allocation, overrides: list[str], backend: str | None = None) -> str:
    """The sbatch script text; raises RecipeError when the recipe is invalid for this allocation."""
    procs = alloc.ranks_per_node()
    check_sbatch_values(
        alloc, str(Path(alloc.log_dir).resolve()) if alloc.log_dir else None
    )  # before anything
    if alloc.launcher not in ("torchrun", "deepspeed"):
        raise RoCoFTError(f"--launcher {alloc.launcher!r}: use torchrun or deepspeed.")
    overrides = list(overrides) + ([f"dist.backend={backend}"] if backend else [])
    if backend and backend != "deepspeed":  # a DeepSpeed recipe run under FSDP/DDP drops its ZeRO settings
        overrides += ["dist.zero_stage=null", "dist.deepspeed_config=null", "dist.zero_init=false"]
    world = alloc.nodes * procs
    # validated exactly as the job runs it: the template always appends train.resume=auto
    recipe, _ = load_recipe(recipe_path, overrides + [JOB_OVERRIDE], world_size=world)
    if recipe.dist.backend == "none" and world > 1:
        raise RoCoFTError(
            f"{recipe_path}: dist.backend is none but the job has {world} ranks; pass --backend "
            "fsdp|deepspeed|ddp or set dist.backend in the recipe."
        )
    if alloc.launcher == "deepspeed" and recipe.dist.backend != "deepspeed":
        raise RoCoFTError("--launcher deepspeed needs dist.backend deepspeed (pass --backend deepspeed).")
    log_dir = alloc.log_dir or str(Path(recipe.output.dir) / "slurm-logs")
    check_sbatch_values(alloc, str(Path(log_dir).resolve()))
    Path(log_dir).mkdir(parents=True, exist_ok=True)  # SLURM opens --output before the script runs
    extra = []
    if alloc.partition:
        extra.append(f"#SBATCH --partition={alloc.partition}")
    if alloc.account:
        extra.append(f"#SBATCH --account={alloc.account}")
    cpus = alloc.cpus_per_task or (8 * alloc.gpus_per_node if alloc.gpus_per_node else procs)
    gpus_line = (
        f"#SBATCH --gpus-per-node={alloc.gpus_per_node}"
        if alloc.gpus_per_node
        else "# CPU job: no GPUs requested (no --gpus-per-node line: clusters without GPUs reject it)"
    )
    values = {
        "JOB_NAME": alloc.job_name or job_name_for(recipe_path),
        "NODES": str(alloc.nodes),
        "GPUS_SBATCH": gpus_line,
        "GPUS_PER_NODE": str(alloc.gpus_per_node),
        "PROCS_PER_NODE": str(procs),
        "CPUS_PER_TASK": str(cpus),
        "TIME": alloc.time,
        "LOG_DIR": shlex.quote(str(Path(log_dir).resolve())),
        "LOG_DIR_SBATCH": str(Path(log_dir).resolve()),
        "EXTRA_SBATCH": "\n".join(extra),
        "RECIPE": shlex.quote(str(Path(recipe_path).resolve())),
        "OVERRIDES": " ".join(shlex.quote(o) for o in overrides),
        "LAUNCHER": alloc.launcher,
        "PYTHON": shlex.quote(sys.executable),
        "OUTPUT_DIR": shlex.quote(str(Path(recipe.output.dir).resolve())),
        "HANG_TIMEOUT_MIN": str(recipe.dist.timeout_minutes),
        "OMP_THREADS": str(max(1, cpus // procs)),
    }
    text = read_shipped_text(TEMPLATE)
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise RoCoFTError(f"{TEMPLATE}: unfilled placeholder near {text[text.index('@@') :][:40]!r}")
    return text


#: the job script's mode before the umask: read, write and execute for all, the mode a shell's
#: ``chmod +x`` script ends with when the umask then takes its bits away (0o755 under the usual
#: umask 022, 0o700 under 077); set on the temporary file, so the script appears executable
SCRIPT_MODE = 0o777


def write_and_maybe_submit(text: str, out: Path, submit: bool) -> str:
    """Write the job script ``out`` (the path :func:`~.io_utils.check_output_file` returned: the
    command checks it before rendering), mode :data:`SCRIPT_MODE` under the umask, then submit it
    when asked."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text, mode=SCRIPT_MODE)
    if not submit:
        return f"wrote {out}\nsubmit it with:  sbatch {out}"
    proc = subprocess.run(["sbatch", str(out)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RoCoFTError(
            f"sbatch {out} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return f"wrote {out}\n{proc.stdout.strip()}"
