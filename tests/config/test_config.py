"""Recipes: strict loading, all problems at once, overrides, batch arithmetic, shape checks."""

import json

import pytest
import yaml

from rocoft_llm.config import gradient_accumulation, load_recipe
from rocoft_llm.errors import RecipeError
from tests.helpers.paths import REPO

RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


def write(tmp_path, data, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def base(tmp_path, **sections):
    data = {"model": {"name_or_path": "meta-llama/Llama-2-7b-hf"}, "output": {"dir": str(tmp_path / "out")}}
    for k, v in sections.items():
        data[k] = v if not isinstance(v, dict) else {**data.get(k, {}), **v}
    return data


def problems(tmp_path, data, overrides=(), **kw):
    with pytest.raises(RecipeError) as e:
        load_recipe(write(tmp_path, data), list(overrides), **kw)
    return e.value.problems


def test_shipped_recipes_validate_offline(monkeypatch):
    monkeypatch.chdir(REPO)
    assert len(RECIPES) >= 9
    unreachable = set()
    for path in RECIPES:
        recipe, result = load_recipe(path)
        assert recipe.output.dir, path
        if any("cannot read the model config" in w for w in result.warnings):
            unreachable.add(path.name)
        elif recipe.method == "rocoft":
            assert result.derived["trainable_parameters"] > 0, path
    # only recipes whose model another command creates (fetch-model's link, the toy's pretraining
    # run) cannot be checked against their shapes before that command ran
    real = ("smollm2", "gemma3")  # models/<name> links that `fetch-model --link` makes
    made_by_other_commands = {p.name for p in RECIPES if p.name.startswith(real)} | {"tiny-llama-demo.yaml"}
    assert unreachable <= made_by_other_commands
    assert sum(1 for p in RECIPES if "tiny" not in p.name and not p.name.startswith(real)) == 8  # the paper's
    assert sum(1 for p in RECIPES if "smollm2" in p.name) == 3  # the real-model demo, commonsense, math
    assert sum(1 for p in RECIPES if "gemma3" in p.name) == 1  # the scale comparison's second model


def test_paper_trainable_counts_are_measured_not_copied(monkeypatch):
    monkeypatch.chdir(REPO)
    _, rows = load_recipe(REPO / "recipes/llama2-7b-math.yaml")
    _, cols = load_recipe(REPO / "recipes/llama2-7b-math.yaml", ["rocoft.mode=column"])
    assert rows.derived["trainable_parameters"] == 3_416_064  # not the paper's 13.47M
    assert cols.derived["trainable_parameters"] == 4_079_616


def test_gemma3_recipe_trainable_counts(monkeypatch):
    """Gemma-3-270M (18 layers, hidden 640, 4 query heads and 1 key-value head of 256, ffn 2048):
    columns r=3 train 3 x out features of q/k/v/o/gate/up/down, rows 3 x in features; the tied
    embedding and the norms add nothing."""
    monkeypatch.chdir(REPO)
    shape = ["model.name_or_path=google/gemma-3-270m"]  # the table of known models: no download
    _, cols = load_recipe(REPO / "recipes/gemma3-270m-math.yaml", shape)
    _, rows = load_recipe(REPO / "recipes/gemma3-270m-math.yaml", [*shape, "rocoft.mode=row"])
    assert cols.derived["trainable_parameters"] == 18 * 3 * (1024 + 256 + 256 + 640 + 2048 + 2048 + 640)
    assert cols.derived["trainable_parameters"] == 373_248
    assert rows.derived["trainable_parameters"] == 18 * 3 * (5 * 640 + 1024 + 2048) == 338_688


def test_every_problem_reported_at_once(tmp_path):
    data = base(
        tmp_path,
        model={"dtyp": "bfloat16"},
        rocoft={"mode": "rows", "rank": 5000},
        train={"lr": "fast", "global_batch_size": 10, "micro_batch_size": 4},
        dist={"backend": "fsdp", "zero_stage": 3},
    )
    found = problems(tmp_path, data)
    text = "\n".join(found)
    assert "model.dtyp: unknown key; did you mean 'dtype'?" in text
    assert (
        "rocoft.mode: 'rows' is not one of 'row', 'column', 'row_column', 'entries'; did you mean 'row'?"
        in text
    )
    assert "train.lr: 'fast' is not a number" in text
    assert "dist.zero_stage" in text and "deepspeed" in text
    assert "train.micro_batch_size=2 or train.global_batch_size=8 or 12" in text
    # the invalid mode leaves the default (columns) for the shape check
    assert (
        "rocoft.rank: 5000 exceeds the input columns of q_proj (4096)" in text and "use rank <= 4096" in text
    )
    assert len(found) == 6


def test_unknown_section_and_missing_required(tmp_path):
    found = problems(tmp_path, {"modle": {"name_or_path": "x"}, "output": {}})
    text = "\n".join(found)
    assert "modle: unknown key; did you mean 'model'?" in text
    assert "model: required section is missing" in text
    assert "output.dir: required key is missing" in text


def test_types_are_strict_but_yaml_floats_work(tmp_path):
    found = problems(
        tmp_path,
        base(
            tmp_path,
            train={"global_batch_size": 16.5, "gradient_checkpointing": "yes"},
            rocoft={"targets": "q_proj"},
        ),
    )
    assert any("train.global_batch_size: 16.5 is not an integer" in p for p in found)
    assert any("gradient_checkpointing: 'yes' is not true or false" in p for p in found)
    assert any("rocoft.targets: 'q_proj' is not a list of strings" in p for p in found)
    recipe, _ = load_recipe(write(tmp_path, base(tmp_path, train={"lr": "1e-4"})))  # PyYAML reads 1e-4 as str
    assert recipe.train.lr == pytest.approx(1e-4)


def test_dotted_overrides(tmp_path):
    path = write(tmp_path, base(tmp_path))
    recipe, _ = load_recipe(
        path, ["train.lr=1e-4", "rocoft.mode=column", "rocoft.targets=[q_proj, v_proj]", "train.max_steps=7"]
    )
    assert recipe.train.lr == pytest.approx(1e-4) and recipe.rocoft.mode == "column"
    assert recipe.rocoft.targets == ["q_proj", "v_proj"] and recipe.train.max_steps == 7
    with pytest.raises(RecipeError, match="train has no key 'lrr'; did you mean 'lr'"):
        load_recipe(path, ["train.lrr=1"])
    with pytest.raises(RecipeError, match="is not KEY=VALUE"):
        load_recipe(path, ["train.lr"])
    with pytest.raises(RecipeError, match="train.lr is a value, not a section"):
        load_recipe(path, ["train.lr.x=1"])


def test_gradient_accumulation_follows_world_size(tmp_path):
    assert gradient_accumulation(16, 2, 8) == 1
    assert gradient_accumulation(16, 2, 1) == 8
    assert gradient_accumulation(16, 2, 4) == 2
    path = write(tmp_path, base(tmp_path, train={"global_batch_size": 16, "micro_batch_size": 2}))
    assert load_recipe(path, world_size=4)[1].derived["gradient_accumulation"] == 2
    with pytest.raises(RecipeError, match="not a multiple of micro_batch_size 2 x world size 3"):
        load_recipe(path, world_size=3)


def test_warmup_longer_than_run_is_a_warning_saying_what_happens(tmp_path):
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps([{"instruction": "q", "input": "", "output": "a", "answer": "a"}] * 100))
    data = base(
        tmp_path,
        data={"train": [str(data_file)]},
        train={"global_batch_size": 10, "micro_batch_size": 5, "epochs": 2, "warmup_steps": 20},
    )
    warned = load_recipe(write(tmp_path, data))[1].warnings
    assert any("train.warmup_steps: 20 >= the run's 20 optimizer steps" in w for w in warned)
    assert any("19/20 of train.lr at the last step and never decays" in w for w in warned)
    from rocoft_llm.config.checks import warmup_problem

    assert "its only step has learning rate 0" in warmup_problem(4, 1)  # no "0/4 of train.lr"
    found = problems(tmp_path, data, strict=True)  # --strict: every warning is an error
    assert any("train.warmup_steps: 20 >= the run's 20 optimizer steps" in p for p in found)
    data["train"]["warmup_steps"] = 2
    assert load_recipe(write(tmp_path, data))[1].derived["optimizer_steps"] == 20


def test_incompatible_combinations(tmp_path):
    data = base(
        tmp_path,
        method="lora",
        rocoft={"rank": 3},
        train={"resume": "auto"},
        output={"overwrite": True},
        rocoft_unused=None,
    )
    data.pop("rocoft_unused")
    text = "\n".join(problems(tmp_path, data))
    assert "rocoft: section given but method is 'lora'" in text
    assert "train.resume and output.overwrite: true conflict" in text
    text = "\n".join(problems(tmp_path, base(tmp_path, rocoft={"selection": "max"})))
    assert "needs calibration data" in text
    text = "\n".join(problems(tmp_path, base(tmp_path, dist={"backend": "none", "zero_init": True})))
    assert "zero_init" in text


def test_targets_and_fused_bloom_rank_checked_against_real_model(tmp_path):
    text = "\n".join(problems(tmp_path, base(tmp_path, rocoft={"targets": ["q_proj", "qkv"]})))
    assert "['qkv'] are not linear layers of meta-llama/Llama-2-7b-hf" in text
    data = base(tmp_path, rocoft={"rank": 4097, "mode": "row"})
    data["model"]["name_or_path"] = "bigscience/bloomz-7b1"
    text = "\n".join(problems(tmp_path, data))
    assert "query_key_value (4096 per fused part)" in text


def test_local_model_config_is_used(tmp_path):
    from tests.helpers.models import tiny_config

    tiny_config("gptj").save_pretrained(tmp_path / "m")
    data = base(tmp_path, rocoft={"mode": "column", "rank": 33})
    data["model"]["name_or_path"] = str(tmp_path / "m")
    assert "use rank <= 32" in "\n".join(problems(tmp_path, data))


def test_unreachable_model_warns_and_strict_errors(tmp_path):
    data = base(tmp_path, data={"train": ["data/not_downloaded.json"]})
    data["model"]["name_or_path"] = "someone/unknown-model"
    _, result = load_recipe(write(tmp_path, data))
    assert any("cannot read the model config offline" in w for w in result.warnings)
    assert any("not_downloaded.json" in w for w in result.warnings)
    found = problems(tmp_path, data, strict=True)
    assert len(found) == 3
    assert any("someone/unknown-model (its config, weights and tokenizer) is neither" in p for p in found)


def test_unknown_dataset_id_is_an_error(tmp_path):
    text = "\n".join(
        problems(tmp_path, base(tmp_path, data={"train": ["gsm9k"]}, eval={"tasks": ["ARC-Easy", "bolq"]}))
    )
    assert "data.train: 'gsm9k' is neither a dataset id" in text and "eval.tasks: 'bolq'" in text
    assert "ARC-Easy" not in text  # aliases are accepted, case-insensitively


def test_data_smaller_than_one_global_batch(tmp_path):
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps([{"instruction": "q", "input": "", "output": "a", "answer": "a"}] * 3))
    found = problems(tmp_path, base(tmp_path, data={"train": [str(data_file)]}))
    assert any("3 records do not fill one global batch of 16" in p for p in found)


def test_template_is_checked_by_the_rule_prepare_and_eval_use(tmp_path):
    """A custom template the data layer would refuse (response not last) is refused at validate time."""
    found = problems(
        tmp_path, base(tmp_path, data={"train": ["gsm8k"], "template": "{output} then {instruction}"})
    )
    assert any(p.startswith("data.template: custom template must end with {output}") for p in found), found
    found = problems(tmp_path, base(tmp_path, data={"train": ["gsm8k"], "template": "alpaca"}))
    assert any("neither built-in (llm_adapters, alpaca_clean, chat)" in p for p in found), found


def test_every_recipe_key_is_documented_and_explained():
    from click.testing import CliRunner

    from rocoft_llm.cli import main
    from rocoft_llm.config.schema import Recipe
    from rocoft_llm.strict_settings import is_section, unwrap

    def keys(model, prefix=""):
        for name, info in model.model_fields.items():
            assert info.description, f"{prefix}{name} has no docstring"
            yield prefix + name
            if is_section(info.annotation):
                yield from keys(unwrap(info.annotation), f"{prefix}{name}.")

    all_keys = list(keys(Recipe))
    assert len(all_keys) > 60
    runner = CliRunner()
    out = runner.invoke(main, ["validate", "--explain", "train.lr"])
    assert out.exit_code == 0 and "Peak learning rate" in out.output and "constraint: > 0" in out.output
    out = runner.invoke(main, ["validate", "--explain", "rocoft"])
    assert all(f"rocoft.{k}" in out.output for k in ("mode", "rank", "selection", "calibration_batches"))
    out = runner.invoke(main, ["validate", "--explain", "train.lrr"])
    assert out.exit_code == 2 and "did you mean 'lr'" in out.output


def test_rocoft_section_is_the_api_config():
    """One declaration: the recipe's rocoft section has RoCoFTConfig's fields, defaults and docs."""
    from rocoft_llm.config.schema import RoCoFTSection
    from rocoft_llm.rocoft.config import RoCoFTConfig

    assert issubclass(RoCoFTSection, RoCoFTConfig)
    assert RoCoFTSection().model_dump() == RoCoFTConfig().model_dump()


@pytest.mark.parametrize(
    "overrides",
    [
        ["rocoft.mode=row"],
        ["rocoft.mode=column"],
        ["rocoft.mode=row_column"],
        ["rocoft.mode=entries", "rocoft.density=0.05", "rocoft.selection=random"],
    ],
)
def test_validate_trainable_count_equals_the_applied_model(monkeypatch, overrides):
    """The count `validate` prints from the model's shapes is the one apply_rocoft creates."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from rocoft_llm import RoCoFTConfig, apply_rocoft, trainable_parameters

    monkeypatch.chdir(REPO)
    recipe, result = load_recipe(REPO / "recipes/tiny-llama-rows.yaml", overrides)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(recipe.model.name_or_path))
    apply_rocoft(model, RoCoFTConfig.model_validate(recipe.rocoft.model_dump()))
    applied = sum(p.numel() for p in trainable_parameters(model).values())
    assert result.derived["trainable_parameters"] == applied


def test_row_column_and_entries_counts_at_paper_scale(monkeypatch):
    """Llama-2-7B, r=3: rows + the columns outside those rows; entries at p=0.01 of every weight."""
    monkeypatch.chdir(REPO)
    _, both = load_recipe(REPO / "recipes/llama2-7b-math.yaml", ["rocoft.mode=row_column"])
    # per layer: rows 3 x in, columns 3 x (out - 3), over q,k,v,o (4096x4096), gate/up (11008x4096),
    # down (4096x11008)
    per_layer = 4 * (3 * 4096 + 3 * 4093) + 2 * (3 * 4096 + 3 * 11005) + (3 * 11008 + 3 * 4093)
    assert both.derived["trainable_parameters"] == 32 * per_layer
    _, entries = load_recipe(
        REPO / "recipes/llama2-7b-math.yaml",
        ["rocoft.mode=entries", "rocoft.density=0.01", "rocoft.selection=random"],
    )
    per_layer = 4 * round(0.01 * 4096 * 4096) + 3 * round(0.01 * 4096 * 11008)
    assert entries.derived["trainable_parameters"] == 32 * per_layer


def test_quantize_refused_where_it_cannot_run(tmp_path, monkeypatch):
    """model.quantize: full finetuning, sharded backends and random weights are refused with the
    working alternative; a missing bitsandbytes is refused with the install line."""
    data = base(tmp_path, method="full", dist={"backend": "fsdp"})
    data["model"]["quantize"] = "nf4"
    text = "\n".join(problems(tmp_path, data))
    assert "cannot be finetuned in full" in text and "use method: rocoft or method: lora" in text
    assert "dist.backend: fsdp is not supported" in text and "use dist.backend: ddp" in text
    assert "needs bitsandbytes" not in text
    data = base(tmp_path, dist={"backend": "deepspeed"})
    data["model"].update(quantize="int8", random_init=True)
    text = "\n".join(problems(tmp_path, data))
    assert "dist.backend: deepspeed is not supported" in text and "model.random_init" in text
    assert "int8" in "\n".join(problems(tmp_path, base(tmp_path), ["model.quantize=int4"]))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    text = "\n".join(problems(tmp_path, base(tmp_path), ["model.quantize=nf4"]))
    assert "model.quantize: nf4 needs bitsandbytes" in text and "pip install 'rocoft-llm[quant]'" in text
    monkeypatch.undo()
    recipe, _ = load_recipe(write(tmp_path, base(tmp_path, method="lora")), ["model.quantize=fp4"])
    assert recipe.model.quantize == "fp4"
