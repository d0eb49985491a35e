"""Hostile job values through `rocoft-llm slurm`: a value that would add an #SBATCH line or a shell command
(newline, `;`, `$(...)`, backquotes, spaces, quotes) or is not a Slurm time is refused with exit 2 and
nothing written; hostile recipe names and overrides render into a script that `bash -n` accepts and whose
#SBATCH lines are exactly the expected ones."""

import re
import subprocess

import pytest
import yaml

from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.paths import TINY

HOSTILE = ["proj\nrm -rf ~", "a b", "x;reboot", "$(reboot)", "`id`", "a'b", 'a"b', "#SBATCH", "a\\b", ""]
TIMES_OK = ["90", "30:00", "24:00:00", "2-00", "2-12:00", "2-12:00:00", "UNLIMITED"]
TIMES_BAD = ["garbage", "24:00:00\n#SBATCH --exclusive", "1:2:3:4", "-5", "24h", "2-", " 10"]


def recipe(tmp_path, name="r.yaml"):
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(TINY / "llama"), "random_init": True},
                "data": {"train": [str(TINY / "data" / "train.json")], "cutoff_len": 64},
                "train": {"global_batch_size": 8, "micro_batch_size": 4, "max_steps": 2},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    return path


def slurm(tmp_path, path, *extra):
    return run_cli(
        "slurm",
        path,
        "--nodes",
        "1",
        "--gpus-per-node",
        "1",
        "--backend",
        "ddp",
        "--out",
        tmp_path / "job.sbatch",
        *extra,
    )


CASES = {
    f"{option} {value!r}": (option, value) for option in ("--account", "--partition") for value in HOSTILE
}
CASES.update({f"--time {value!r}": ("--time", value) for value in TIMES_BAD})
CASES["--log-dir with a newline"] = ("--log-dir", "logs\n#SBATCH --exclusive")
CASES["--log-dir with a space"] = ("--log-dir", "my logs")


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_job_value_is_refused_and_nothing_written(tmp_path, case):
    option, value = CASES[case]
    path = recipe(tmp_path)
    before = snapshot(tmp_path)
    needle = {"--time": "is not a Slurm time limit", "--log-dir": "cannot be written on an #SBATCH"}.get(
        option, "is not a Slurm name"
    )
    assert_refused(slurm(tmp_path, path, option, value), needle)
    assert snapshot(tmp_path) == before  # no sbatch file, no log directory


@pytest.mark.parametrize("value", TIMES_OK)
def test_every_slurm_time_format_is_accepted(tmp_path, value):
    result = slurm(tmp_path, recipe(tmp_path), "--time", value)
    assert result.exit_code == 0, result.output
    assert f"#SBATCH --time={value}\n" in (tmp_path / "job.sbatch").read_text()


def test_hostile_recipe_name_and_overrides_render_into_a_valid_script(tmp_path):
    """A recipe file name with a newline and `$(...)`, and overrides with shell syntax in their values, stay
    data: the job name is sanitised, the overrides are quoted, and the #SBATCH lines are exactly these."""
    path = recipe(tmp_path, "evil\n$(reboot);`id` x.yaml")
    overrides = ["output.report_to=[]", "data.template=Q: {instruction} $(reboot) `id`\n; A: {output}"]
    result = slurm(
        tmp_path, path, *overrides, "--account", "proj-1", "--partition", "gpu,gpu2", "--time", "1-00:00"
    )
    assert result.exit_code == 0, result.output
    script = tmp_path / "job.sbatch"
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    text = script.read_text()
    logs = (tmp_path / "run" / "slurm-logs").resolve()
    assert [line for line in text.splitlines() if line.startswith("#SBATCH")] == [
        "#SBATCH --job-name=rocoft-evil___reboot___id__x",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --time=1-00:00",
        f"#SBATCH --output={logs}/%x-%j.out",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --partition=gpu,gpu2",
        "#SBATCH --account=proj-1",
    ]
    # the overrides reach the job as the exact strings given: bash parses them back unchanged
    quoted = re.search(r"^OVERRIDES=\((.*?)\)$", text, re.S | re.M).group(1)
    shown = subprocess.run(
        ["bash", "-c", f'OVERRIDES=({quoted}); printf "%s\\0" "${{OVERRIDES[@]}}"'],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split("\0")
    assert overrides[1] in shown and "train.resume=auto" in shown
