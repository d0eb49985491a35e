"""Hostile recipes and overrides through `validate`, `train` and `slurm`: exit 2, a message naming the file,
the key, the bad value and the fix; nothing written (no output directory, no sbatch file)."""

import time

import pytest
import yaml

from tests.helpers.cli import REPO_TINY, assert_refused, run_cli, snapshot

BASE = {
    "model": {"name_or_path": str(REPO_TINY / "llama"), "random_init": True, "dtype": "float32"},
    "data": {"train": [str(REPO_TINY / "data" / "train.json")], "cutoff_len": 64},
    "train": {"global_batch_size": 8, "micro_batch_size": 4, "max_steps": 2, "precision": "fp32"},
}

CASES = {
    # name: (recipe text or None for BASE, overrides, message parts)
    "nan learning rate": (None, ["train.lr=nan"], ["train.lr: 'nan' is not a finite number; use a number"]),
    "infinite learning rate": (None, ["train.lr=inf"], ["train.lr: 'inf' is not a finite number"]),
    "YAML .nan": (None, ["train.max_grad_norm=.nan"], ["train.max_grad_norm: nan is not a finite number"]),
    "negative learning rate": (None, ["train.lr=-1e-3"], ["train.lr: '-1e-3' must be > 0"]),
    "zero epochs": (None, ["train.epochs=0", "train.max_steps=null"], ["train.epochs: 0 must be > 0"]),
    "dropout of 1.5": (None, ["model.dropout=1.5"], ["model.dropout: 1.5 must be < 1"]),
    "zero batch": (None, ["train.global_batch_size=0"], ["train.global_batch_size: 0 must be >= 1"]),
    "fractional batch": (
        None,
        ["train.micro_batch_size=2.5"],
        ["train.micro_batch_size: 2.5 is not an integer"],
    ),
    "negative weight decay": (None, ["train.weight_decay=-0.1"], ["train.weight_decay: -0.1 must be >= 0"]),
    "rank 0": (None, ["rocoft.rank=0"], ["rocoft.rank: 0 must be >= 1"]),
    "unknown mode": (
        None,
        ["rocoft.mode=diagonal"],
        ["rocoft.mode: 'diagonal' is not one of 'row', 'column', 'row_column'"],
    ),
    "entries without density": (
        None,
        ["rocoft.mode=entries", "rocoft.selection=random"],
        ["rocoft.density: mode 'entries' needs"],
    ),
    "entries with a scored selection": (
        None,
        ["rocoft.mode=entries", "rocoft.density=0.01", "rocoft.selection=max"],
        [
            "rocoft.selection: 'max' picks rows or columns; mode 'entries' samples",
            "set rocoft.selection: random",
        ],
    ),
    "density of 0": (None, ["rocoft.mode=entries", "rocoft.density=0"], ["rocoft.density: 0 must be > 0"]),
    "density of 1.5": (
        None,
        ["rocoft.mode=entries", "rocoft.density=1.5"],
        ["rocoft.density: 1.5 must be <= 1"],
    ),
    "density for rows": (
        None,
        ["rocoft.density=0.01"],
        ["rocoft.density: 0.01 applies to mode 'entries' only"],
    ),
    "row_column rank above the columns": (
        None,
        ["rocoft.mode=row_column", "rocoft.rank=65"],
        ["rocoft.rank: 65 exceeds", "input columns of", "use rank <= 64"],
    ),
    "empty targets": (None, ["rocoft.targets=[]"], ["rocoft.targets: [] must have at least 1 item"]),
    "tiny cutoff": (None, ["data.cutoff_len=4"], ["data.cutoff_len: 4 must be >= 8"]),
    "zero stage 5": (
        None,
        ["dist.backend=deepspeed", "dist.zero_stage=5"],
        ["dist.zero_stage: 5 must be <= 3"],
    ),
    "unknown reporter": (None, ["output.report_to=[neptune]"], ["output.report_to: ['neptune'] is not"]),
    "data.train a string": (
        None,
        ["data.train=file.json"],
        ["data.train: 'file.json' is not a list of strings"],
    ),
    "typo in a key": (None, ["train.lrr=1"], ["train has no key 'lrr'; did you mean 'lr'"]),
    "not KEY=VALUE": (None, ["train.lr"], ["is not KEY=VALUE"]),
    "unknown template": (
        None,
        ["data.template=vicuna"],
        ["data.template: template 'vicuna' is neither built-in"],
    ),
    "template without output": (None, ["data.template={instruction}"], ["data.template"]),
    "resume with overwrite": (None, ["train.resume=auto", "output.overwrite=true"], ["conflict"]),
    "DeepSpeed config not JSON": (
        None,
        ["dist.backend=deepspeed", "dist.deepspeed_config=DS"],
        ["dist.deepspeed_config:", "ds.json: line 1: DeepSpeed config is not valid JSON"],
    ),
    "DeepSpeed config missing": (
        None,
        ["dist.backend=deepspeed", "dist.deepspeed_config=nope.json"],
        ["dist.deepspeed_config: nope.json: DeepSpeed config does not exist"],
    ),
    "unknown section": (
        "modle: {name_or_path: x}\noutput: {dir: o}\n",
        [],
        ["modle: unknown key; did you mean 'model'?", "model: required section is missing"],
    ),
    "top level a list": ("- model\n", [], ["the top level must be a mapping"]),
    "empty file": ("", [], ["model: required section is missing", "output: required section is missing"]),
    "invalid YAML": ("model: {name_or_path: x\noutput: [\n", [], ["invalid YAML", "line"]),
    "not UTF-8": (b"model: {name_or_path: caf\xe9}\n", [], ["line 1", "not UTF-8"]),
    "a section that is a value": ("model: 3\noutput: {dir: o}\n", [], ["model: 3 is not a mapping of keys"]),
    "null required key": (
        "model: {name_or_path: null}\noutput: {dir: o}\n",
        [],
        ["model.name_or_path: None is not a string"],
    ),
    "billion laughs (nested aliases)": (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi")
        )
        + "model: {name_or_path: *i}\noutput: {dir: o}\n",
        [],
        ["line 2", "invalid YAML", "alias *a found: aliases and anchors are not allowed in recipes"],
    ),
    "a 5,000-deep mapping": (
        "model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        [],
        ["line 1", "nesting deeper than 32 levels"],
    ),
    "a 5,000-deep list": ("output: " + "[" * 5000 + "]" * 5000 + "\n", [], ["nesting deeper than 32 levels"]),
    "a 5,000-deep override": (
        None,
        ["train.lr=" + "[" * 5000 + "]" * 5000],
        ["train.lr: '[[[[", "characters)"],
    ),
    "quantize with a backend that cannot take it": (
        None,
        ["model.quantize=nf4", "dist.backend=fsdp"],
        ["model.quantize: nf4 with dist.backend: fsdp is not supported", "use dist.backend: ddp"],
    ),
    "quantize with full finetuning": (
        None,
        ["model.quantize=int8", "method=full"],
        ["model.quantize: int8 with method: full", "use method: rocoft or method: lora"],
    ),
    "an unknown quantization": (
        None,
        ["model.quantize=int4"],
        ["model.quantize: 'int4' is not one of 'nf4', 'fp4', 'int8'"],
    ),
    "an unknown attention kernel": (
        None,
        ["model.attn_implementation=garbage"],
        ["model.attn_implementation:", "'garbage' is not an attention kernel", "sdpa", "or null"],
    ),
    "a seed beyond numpy's range": (
        None,
        ["train.seed=99999999999999999999999"],
        ["train.seed:", "4294967295"],
    ),
    "a negative seed": (None, ["train.seed=-1"], ["train.seed: -1 must be >= 0"]),
    "a key given twice": (
        "model: {name_or_path: x}\noutput: {dir: o}\nmodel: {name_or_path: y}\n",
        [],
        ["line 3", "key 'model' is given twice (first on line 1); keep one"],
    ),
    "an output.dir name over 255 bytes": (
        None,
        ["output.dir=" + "x" * 300],
        ["output.dir:", "has a name of 300 bytes", "at most 255 bytes per name"],
    ),
    "a 200 kB value": (
        None,
        ["model.dtype=" + "x" * 200_000],
        ["model.dtype: 'xxxx", "... (200,002 characters) is not"],
    ),
}
#: a problem message shows a bounded preview of a value, never the whole value
LONGEST_MESSAGE = 4000
#: hostile YAML is refused in well under a second of CPU time (process time, not wall time: a shared
#: machine's load does not count; an exponential blow-up would take minutes)
TIMED = {
    "billion laughs (nested aliases)",
    "a 5,000-deep mapping",
    "a 5,000-deep list",
    "a 5,000-deep override",
}


def write_recipe(tmp_path, text):
    path = tmp_path / "r.yaml"
    if text is None:
        path.write_text(yaml.safe_dump({**BASE, "output": {"dir": str(tmp_path / "run"), "report_to": []}}))
    else:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_recipe_is_refused(tmp_path, case, command):
    text, overrides, needles = CASES[case]
    recipe = write_recipe(tmp_path, text)
    before = snapshot(tmp_path)
    (tmp_path / "ds.json").write_text("{zero: 3}")
    overrides = [o.replace("=DS", f"={tmp_path / 'ds.json'}") for o in overrides]
    before = snapshot(tmp_path)
    if case in TIMED:
        run_cli(command, recipe, *overrides)  # the first call in a process pays the imports
    started = time.process_time()
    result = run_cli(command, recipe, *overrides)
    seconds = time.process_time() - started
    assert_refused(result, str(recipe) if "KEY=VALUE" not in needles[0] else "", *needles)
    assert len(result.output) < LONGEST_MESSAGE, result.output[:300]
    assert case not in TIMED or seconds < 2.0, f"{case}: {seconds:.2f} CPU s"
    assert snapshot(tmp_path) == before  # train wrote nothing: no run directory, no cache


def test_train_overwrite_flag_meets_the_resume_conflict_check(tmp_path):
    recipe = write_recipe(tmp_path, None)
    assert_refused(run_cli("train", recipe, "train.resume=auto", "--overwrite"), "conflict")
    assert not (tmp_path / "run").exists()


def test_slurm_validates_what_the_job_runs(tmp_path):
    """The job always appends train.resume=auto: a recipe with output.overwrite: true passes render-time
    checks only if that is included - so it is refused now, before the job is queued."""
    recipe = write_recipe(tmp_path, None)
    out = tmp_path / "job.sbatch"
    result = run_cli(
        "slurm", recipe, "output.overwrite=true", "--nodes", "1", "--gpus-per-node", "1", "--out", out
    )
    assert_refused(result, "train.resume and output.overwrite: true conflict")
    assert not out.exists()
    ok = run_cli("slurm", recipe, "--nodes", "1", "--gpus-per-node", "1", "--out", out)
    assert ok.exit_code == 0, ok.output
    assert "train.resume=auto" in out.read_text()


def test_missing_model_directory_names_the_recipe_that_writes_it(tmp_path):
    (tmp_path / "pretrain.yaml").write_text(
        yaml.safe_dump({**BASE, "output": {"dir": str(tmp_path / "pre")}})
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                **BASE,
                "model": {"name_or_path": str(tmp_path / "pre" / "model")},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    valid = run_cli("validate", recipe)
    assert valid.exit_code == 0 and "does not exist" in valid.output  # a warning: it may be created later
    for args in (["train", recipe], ["prepare", "--recipe", recipe]):
        assert_refused(
            run_cli(*args),
            "model.name_or_path: the directory",
            "does not exist",
            f"rocoft-llm train {tmp_path / 'pretrain.yaml'}",
        )
    assert not (tmp_path / "run").exists()
