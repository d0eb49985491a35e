"""Recipe checks beyond one field (those are declared in :mod:`.schema`): incompatible combinations,
batch arithmetic, reachable data files, ranks against the model's real dimensions, warmup against
the run length.

Checks that need a model config or a data file warn and skip when it cannot be reached offline;
``strict`` makes those warnings errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..architectures import find_architecture, packing_problem, supported_model_types
from ..data.catalog import all_dataset_ids, canonical_dataset_id
from ..data.file_split import file_part_problem, parse_file_split_spec
from ..data.heldout_split import parse_split_spec, split_suffix_problem
from ..errors import RoCoFTError
from ..methods import all_methods, get_method
from ..ownership import output_dir_problem
from .reachability import looks_like_path, reachability_warnings
from .schema import Recipe


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: derived facts shown by `validate` (accumulation, trainable count, run length ...).
    derived: dict = field(default_factory=dict)


def gradient_accumulation(global_batch: int, micro_batch: int, world_size: int) -> int:
    """Micro-batches per rank per optimizer step, so a recipe means the same on 1 or 16 GPUs."""
    per_step = micro_batch * world_size
    if global_batch % per_step:
        fixes = []
        micros = [m for m in range(micro_batch, 0, -1) if global_batch % (m * world_size) == 0]
        if micros:
            fixes.append(f"train.micro_batch_size={micros[0]}")
        lower, upper = global_batch // per_step * per_step, (global_batch // per_step + 1) * per_step
        fixes.append("train.global_batch_size=" + (f"{lower} or {upper}" if lower else str(upper)))
        raise ValueError(
            f"train.global_batch_size {global_batch} is not a multiple of micro_batch_size {micro_batch} "
            f"x world size {world_size} = {per_step}; use {' or '.join(fixes)}."
        )
    return global_batch // per_step


def run_steps(num_examples: int, global_batch: int, epochs: float) -> int:
    """Optimizer steps of a run: full global batches per epoch (the remainder is not used) x epochs."""
    return math.ceil((num_examples // global_batch) * epochs)


def warmup_problem(warmup: int, steps: int) -> str | None:
    """The warning when warmup lasts the whole run (validate says it, and train again once the data is
    prepared): allowed - a smoke test of a few steps is a fair use - but said, with what happens."""
    if warmup >= steps and steps == 1:
        return (
            f"train.warmup_steps: {warmup} >= the run's 1 optimizer step, so its only step has learning rate 0 "
            "and changes nothing; use train.warmup_steps=0 to train at train.lr"
        )
    if warmup >= steps:
        return (
            f"train.warmup_steps: {warmup} >= the run's {steps} optimizer steps, so the whole run is warmup: "
            f"the learning rate rises linearly from 0 (the first step changes nothing) to {steps - 1}/{warmup} "
            f"of train.lr at the last step and never decays; use warmup_steps < {steps} (e.g. "
            f"{steps // 10}) to train at train.lr"
        )
    return None


def _combinations(r: Recipe, raw: dict, res: CheckResult) -> None:
    p = res.problems
    method = get_method(r.method)
    for other in all_methods():
        if other.section and other is not method and raw.get(other.section):
            p.append(
                f"{other.section}: section given but method is {r.method!r}; remove it (or override "
                f"{other.section}=null) or set method: {other.name}"
            )
    method.check(r, p, res.warnings)
    p.extend(quantize_problems(r))
    if r.dist.backend != "deepspeed":
        for key in ("zero_stage", "deepspeed_config"):
            if getattr(r.dist, key) is not None:
                p.append(
                    f"dist.{key}: only used with dist.backend: deepspeed (backend is {r.dist.backend!r}); remove it"
                )
        if r.dist.zero_init:
            p.append("dist.zero_init: true needs dist.backend: deepspeed with zero_stage 3")
    elif r.dist.zero_init and r.dist.zero_stage not in (None, 3):
        p.append(f"dist.zero_init: true needs dist.zero_stage 3 (got {r.dist.zero_stage})")
    if r.dist.deepspeed_config:
        from ..io_utils import read_json

        try:
            if not isinstance(
                read_json(r.dist.deepspeed_config, "DeepSpeed config", "fix the path or the file"), dict
            ):
                p.append(f"dist.deepspeed_config: {r.dist.deepspeed_config} is not a JSON object")
        except RoCoFTError as e:
            p.append(f"dist.deepspeed_config: {e}")
    problem = output_dir_problem(r.output.dir)  # as `train` will see it: normalised, not a file, writable
    if problem:
        p.append(f"output.dir: {problem}")
    if r.train.resume is not None and r.output.overwrite:
        p.append(
            "train.resume and output.overwrite: true conflict (overwrite would delete the checkpoint to resume "
            "from); drop one of them"
        )
    if r.rocoft.indices_file and not Path(r.rocoft.indices_file).is_file():
        p.append(
            f"rocoft.indices_file: {r.rocoft.indices_file} does not exist; create it with `rocoft-llm select`"
        )
    if r.dist.backend == "fsdp" and r.train.precision == "fp16":
        p.append(
            "train.precision: fp16 with dist.backend: fsdp needs a sharded grad scaler rocoft-llm does not use; "
            "use bf16 (or deepspeed for fp16)"
        )
    if r.dist.zero_init and r.model.random_init:
        p.append(
            "dist.zero_init: true loads pretrained weights partitioned; it does not apply to model.random_init"
        )
    if r.train.precision == "fp16" and r.model.dtype == "bfloat16":
        p.append(
            "train.precision: fp16 with model.dtype: bfloat16 mixes formats; use bf16 or model.dtype: float16"
        )
    if r.eval.nll_steps and not r.eval.nll_data:
        p.append(
            f"eval.nll_steps {r.eval.nll_steps} without eval.nll_data: name the held-out records to measure "
            "(e.g. eval.nll_data=math_data.json:validation) or drop eval.nll_steps"
        )
    nll_data = [r.eval.nll_data] if r.eval.nll_data else []
    for key, tasks in (
        ("data.train", r.data.train),
        ("eval.tasks", r.eval.tasks),
        ("eval.nll_data", nll_data),
    ):
        for name in tasks:
            split = parse_split_spec(name)  # boolq:train / boolq:heldout - a seeded split of a test file
            file_split = parse_file_split_spec(name)  # math_data.json:validation - a split of a file
            path = file_split[0] if file_split else name
            suffix_problem = split_suffix_problem(name, lambda d: canonical_dataset_id(d) is not None)
            if Path(path).is_dir():
                p.append(f"{key}: {path} is a directory; list the JSON file(s) inside it")
            elif suffix_problem:
                p.append(f"{key}: {suffix_problem}")
            elif part_problem := file_part_problem(name):
                p.append(f"{key}: {part_problem}")
            elif canonical_dataset_id(split[0] if split else name) is None and not Path(path).exists():
                msg = (
                    f"{key}: {name!r} is neither a dataset id ({', '.join(all_dataset_ids())}), a split "
                    "(<dataset>:train / <dataset>:heldout), nor an existing file"
                )
                # a missing JSON file may just not be downloaded yet on this machine: warn (errors with --strict)
                (res.warnings if path.endswith((".json", ".jsonl")) else p).append(msg)


def quantize_problems(r: Recipe) -> list[str]:
    """What ``model.quantize`` cannot be combined with: a missing bitsandbytes, a method that trains
    every weight (a packed 4/8-bit weight has no gradient), sharded backends (FSDP2 and ZeRO-3 would
    shard the packed storage, which the RoCoFT slices and bitsandbytes' quantization state do not
    follow), and a random-initialised model (nothing pretrained to quantize)."""
    q = r.model.quantize
    if q is None:
        return []
    import importlib.util

    out = []
    try:
        missing = importlib.util.find_spec("bitsandbytes") is None
    except ValueError:  # an import blocked in sys.modules (None) has no spec
        missing = True
    if missing:
        from ..model_loading import bitsandbytes_missing

        out.append(bitsandbytes_missing(q))
    if get_method(r.method).trains_all_weights:
        out.append(
            f"model.quantize: {q} with method: {r.method}: a quantized base cannot be finetuned in full (its "
            "packed weights have no gradient); use method: rocoft or method: lora, or model.quantize: null"
        )
    if r.dist.backend in ("fsdp", "deepspeed"):
        out.append(
            f"model.quantize: {q} with dist.backend: {r.dist.backend} is not supported (sharding a "
            "bitsandbytes-quantized base); use dist.backend: ddp (each rank holds the quantized base, "
            "which is what makes it fit) or none, or model.quantize: null"
        )
    if r.model.random_init:
        out.append(
            f"model.quantize: {q} with model.random_init: true: quantization applies to pretrained weights "
            "loaded from model.name_or_path; drop one of them"
        )
    return out


def _data_size(r: Recipe, res: CheckResult) -> int | None:
    """Number of training records when every source is a local JSON file (else unknown). A reachable file is
    read as `prepare` reads it: unreadable, non-array, empty or bad records are problems now, not at run time."""
    from ..data.records import RecordFile
    from ..data.sources import answer_spec_for_file
    from ..data.templates import format_problem, get_template, input_problem
    from ..data.validate import RecordChecker, kept_stream

    total, known = 0, True
    for name in r.data.train:
        path = Path(name)
        if not path.is_file():
            known = False
            continue
        try:  # read as a stream, as `prepare` reads it: memory holds one record
            records, spec = RecordFile(path), answer_spec_for_file(path)
            checker = RecordChecker(spec, str(path), r.data.bad_records, r.data.format)
            count = kept = 0
            for i, record in enumerate(records):
                count += 1
                kept += checker.check(i, record) is not None
            if not count:
                raise RoCoFTError(
                    f"{path}: the data file holds no records (an empty JSON array); add records or "
                    "remove it from data.train"
                )
            drops = checker.finish()
            if not kept:  # what bad_records: drop leaves - nothing - is an error now, not in prepare
                raise RoCoFTError(
                    f"{path}: no records left: all {count} are bad and dropped (data.bad_records: drop, "
                    f"{dict(drops)}); fix the file"
                )
            if drops.ignored:  # reported, not refused (nor a warning, which --strict would refuse)
                res.derived.setdefault("ignored_fields", {})[str(path)] = dict(drops.ignored)
            template = get_template(r.data.template)
            problem = format_problem(drops.format, template, str(path)) or input_problem(
                kept_stream(records, spec, str(path), r.data.bad_records, r.data.format), template, str(path)
            )
            if problem:
                raise RoCoFTError(problem)
        except RoCoFTError as e:
            res.problems.append(f"data.train: {e}")
            known = False
            continue
        total += kept
    return total if known and total else None


def _run_length(r: Recipe, res: CheckResult, world_size: int, training: bool) -> None:
    try:
        res.derived["gradient_accumulation"] = gradient_accumulation(
            r.train.global_batch_size, r.train.micro_batch_size, world_size
        )
    except ValueError as e:
        res.problems.append(str(e))
    res.derived["world_size"] = world_size
    n = _data_size(r, res)
    if not training:  # preparing data: the run's length is not this command's business
        return
    steps = r.train.max_steps
    if steps is None and n is not None:
        steps = run_steps(n, r.train.global_batch_size, r.train.epochs)
        res.derived["train_records"] = n
        if n < r.train.global_batch_size:
            res.problems.append(
                f"data.train: {n} records do not fill one global batch of {r.train.global_batch_size}, so "
                "no optimizer step would run; lower train.global_batch_size or add data"
            )
            return
    if steps is not None:
        res.derived["optimizer_steps"] = steps
        problem = warmup_problem(r.train.warmup_steps, steps)
        if problem:
            res.warnings.append(problem)


def model_dir_problem(r: Recipe, recipe_path: str | Path | None) -> str | None:
    """A model (or tokenizer) directory that does not exist yet, with the recipe beside this one that writes it."""
    for key, name in (("model.name_or_path", r.model.name_or_path), ("model.tokenizer", r.model.tokenizer)):
        if not name or not looks_like_path(name) or Path(name).expanduser().exists():
            continue
        fix = "fix the path, or create the model there first"
        if recipe_path is not None:
            import yaml

            from ..io_utils import safe_yaml_load

            for other in sorted(Path(recipe_path).parent.glob("*.y*ml")):
                try:
                    out_dir = (safe_yaml_load(other.read_text()) or {}).get("output", {}).get("dir")
                except (yaml.YAMLError, RecursionError, OSError, UnicodeDecodeError, AttributeError):
                    continue
                if out_dir and Path(name).is_relative_to(Path(out_dir)) and Path(other) != Path(recipe_path):
                    fix = (
                        f"it is written by `rocoft-llm train {other}` (output.dir {out_dir}): run that first"
                    )
                    break
        return f"{key}: the directory {name} does not exist; {fix}"
    return None


def _shapes(r: Recipe, res: CheckResult, strict: bool) -> None:
    from .model_shapes import linear_shapes, resolve_config

    unreachable = res.problems if strict else res.warnings
    try:  # validate never runs model code: trust_remote_code is left off here, whatever the recipe says
        config, where = resolve_config(r.model.name_or_path, trust_remote_code=False)
    except (ValueError, OSError) as e:
        config, where = (
            None,
            f"its config needs its own Python code, which validate never runs ({str(e)[:120]})",
        )
    if config is None:
        unreachable.append(
            f"model.name_or_path: cannot read the model config offline ({where}); rank and target "
            "checks skipped"
        )
        return
    arch = find_architecture(config.model_type)
    if r.train.packing:
        problem = packing_problem(config.model_type, r.model.attn_implementation)
        if problem:
            res.problems.append(f"{problem} (model {r.model.name_or_path}, from {where})")
    shapes = linear_shapes(config)
    method = get_method(r.method)
    if method.section is None:  # a method without targets (full finetuning)
        res.derived["model_config_from"] = where
        return
    targets = method.targets(r) or (arch.targets if arch else None)
    key = f"{method.section}.targets"
    if targets is None:
        res.problems.append(
            f"{key}: model_type {config.model_type!r} (from {where}) is not in the architecture table "
            f"({', '.join(supported_model_types())}); list the nn.Linear names to adapt"
        )
        return
    missing = [t for t in targets if t.rsplit(".", 1)[-1] not in shapes]
    if missing:
        res.problems.append(
            f"{key}: {missing} are not linear layers of {r.model.name_or_path} (from {where}); "
            f"its linears: {', '.join(sorted(shapes))}"
        )
        return
    method.check_shapes(r, config, arch, shapes, targets, res)
    res.derived["model_config_from"] = where


def check_recipe(
    recipe: Recipe,
    raw: dict,
    world_size: int = 1,
    strict: bool = False,
    offline_checks: bool = True,
    training: bool = True,
) -> CheckResult:
    """Every cross-field and file check; ``training=False`` (prepare) skips the run-length checks."""
    res = CheckResult()
    _combinations(recipe, raw, res)
    _run_length(recipe, res, world_size, training)
    if offline_checks:
        _shapes(recipe, res, strict)
        res.warnings.extend(w for w in reachability_warnings(recipe) if w not in res.warnings)
    if strict:
        res.problems.extend(res.warnings)
        res.warnings = []
    return res
