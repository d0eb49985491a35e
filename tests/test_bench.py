"""The benchmarks: bench/methods.py (memory measurement, target checks, a small end-to-end run of both
configurations' code paths on CPU) and bench/sharding_memory.py end to end. BENCHMARKS.md quotes them."""

import json
import subprocess
import sys

import pytest
import torch

from tests.helpers.bench import load_bench_script, table_rows
from tests.helpers.paths import REPO

methods = load_bench_script("methods")


def test_profiled_peak_counts_live_bytes_at_their_highest():
    mib = 2**20

    def fn():
        a = torch.empty(mib, dtype=torch.uint8)
        b = torch.empty(2 * mib, dtype=torch.uint8)  # 3 MiB live
        del a
        c = torch.empty(mib // 2, dtype=torch.uint8)  # 2.5 MiB live
        del b, c
        d = torch.empty(mib, dtype=torch.uint8)  # 1 MiB live
        return d

    assert methods.profiled_peak_bytes(fn) == 3 * mib


def test_paired_ratio_cancels_drift_between_rounds():
    # round 2 is twice as slow for every method (machine load): same-round ratios stay 1.1
    blocks = {"floor": [[1.0, 1.0], [2.0, 2.0], [1.0, 1.2]], "m": [[1.1, 1.1], [2.2, 2.2], [1.1, 1.32]]}
    assert methods.paired_ratio(blocks, "m", "floor") == pytest.approx(1.1, rel=1e-12)
    assert methods.paired_ratio(blocks, "floor", "m") == pytest.approx(1 / 1.1, rel=1e-12)


def test_targets_read_met_and_missed():
    med = {"floor": 1.0, "rocoft-rows": 1.04, "rocoft-columns": 1.2, "lora-r8": 1.6, "paper": 1.1}
    peaks = {"floor": 30.0, "rocoft-rows": 34.9, "rocoft-columns": 30.9, "lora-r8": 47.8, "paper": 46.8}

    def ratio(a, b):
        return med[a] / med[b]

    gpu = methods.check_targets("gpu", ratio, peaks)
    assert [line.rsplit(": ", 1)[1] for line in gpu] == [
        "met",
        "MISSED",  # step vs floor: rows 1.04 <= 1.05, columns 1.2 > 1.05
        "MISSED",
        "met",  # peak: columns +3% > 2%; rows +16% <= 20%
        "met",
        "met",  # rows: 1.54x faster than LoRA, 27% less memory
        "MISSED",
        "met",  # columns: 1.33x faster, 35% less memory
    ]
    cpu = methods.check_targets("cpu", ratio, peaks)
    assert [line.rsplit(": ", 1)[1] for line in cpu] == ["met", "MISSED", "met", "met", "met", "MISSED"]


def _run(*args):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "methods.py"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    timing = proc.stdout.split("# torch.profiler")[0]  # the profile table (if asked for) comes after
    rows = {
        name: {"trainable": int(c[1].replace(",", "")), "ms": float(c[2]), "peak": float(c[6])}
        for name, c in table_rows(timing, "method").items()
    }
    return proc.stdout, rows


@pytest.mark.slow
@pytest.mark.parametrize("config,dtype", [("cpu", "float32"), ("gpu", "bfloat16")])
def test_small_run_reports_every_method_with_exact_counts(config, dtype):
    h, i, layers, r = 64, 172, 2, 3
    out, rows = _run(
        "--config",
        config,
        "--device",
        "cpu",
        "--dtype",
        dtype,
        "--layers",
        str(layers),
        "--hidden",
        str(h),
        "--intermediate",
        str(i),
        "--heads",
        "4",
        "--vocab",
        "512",
        "--seq",
        "32",
        "--batch",
        "2",
        "--rank",
        str(r),
        "--rounds",
        "1",
        "--steps",
        "1",
        "--profile",
        "1",
    )
    assert list(rows) == ["floor", "rocoft-rows", "rocoft-columns", "paper", "lora-r8", "full"]
    # q,k,v,o,gate,up read h inputs, down reads i; q,k,v,o,down write h outputs, gate/up write i
    assert rows["rocoft-rows"]["trainable"] == layers * r * (6 * h + i)
    assert rows["paper"]["trainable"] == rows["rocoft-rows"]["trainable"]
    assert rows["rocoft-columns"]["trainable"] == layers * r * (5 * h + 2 * i)
    assert rows["lora-r8"]["trainable"] == layers * 8 * (4 * 2 * h + 3 * (h + i))
    assert rows["full"]["trainable"] == layers * (4 * h * h + 3 * h * i + 2 * h) + h + 2 * 512 * h
    assert all(row["ms"] > 0 for row in rows.values())
    # memory: columns save only x[..., idx], rows save x; full finetuning holds grads and Adam state
    assert rows["floor"]["peak"] <= rows["rocoft-columns"]["peak"] <= rows["rocoft-rows"]["peak"]
    assert rows["full"]["peak"] > rows["floor"]["peak"]
    assert "# targets (cpu):" in out and out.count(": met") + out.count(": MISSED") == 6
    profile = out.split("# torch.profiler")[1].splitlines()
    assert [
        line.split("|")[1].strip() for line in profile if line.startswith("| ") and "method" not in line
    ] == list(rows)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.timeout(500)
def test_sharding_benchmark_reports_per_rank_shares():
    """bench/sharding_memory.py end to end (1 process + FSDP2 on 2 CPU ranks): its table says what
    the runs' summaries say - frozen weights halve per rank."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "sharding_memory.py"),
            "--ranks",
            "2",
            "--backends",
            "fsdp",
            "--layers",
            "1",
            "--steps",
            "1",
            "--seq",
            "64",
            "--timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        cells[0]: cells[1:]
        for line in proc.stdout.splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {"run", "1 process", "FSDP2, 2 ranks"}
    assert float(rows["1 process"][1]) == 1.0 and float(rows["FSDP2, 2 ranks"][1]) == pytest.approx(
        0.5, abs=0.02
    )
    assert float(rows["FSDP2, 2 ranks"][3]) < float(rows["1 process"][3])  # optimizer state sharded too


def test_gpu_wheels_closure_pins_this_environment_and_leaves_the_image_alone():
    """bench/gpu_wheels.py: what it would carry to the GPU machine is the training stack's dependency
    closure at THIS environment's versions, without torch/CUDA/numpy (the image's own)."""
    gpu_wheels = load_bench_script("gpu_wheels")

    versions = gpu_wheels.closure(["peft", "datasets"], "3.12")
    assert {
        "peft",
        "transformers",
        "accelerate",
        "huggingface-hub",
        "safetensors",
        "tokenizers",
        "datasets",
        "dill",
        "multiprocess",
    } <= set(versions)
    assert not {"torch", "numpy", "pyarrow", "pandas"} & set(versions)
    assert not any(name.startswith("nvidia-") for name in versions)
    import peft
    import transformers

    assert versions["transformers"] == transformers.__version__ and versions["peft"] == peft.__version__


def test_gpu_wheels_slims_bitsandbytes_to_the_images_cuda(tmp_path):
    """bitsandbytes' wheel carries one library per CUDA/ROCm version (43 MB): only the image's CUDA
    major and the CPU library are kept, and RECORD loses the dropped files' lines (pip installs it)."""
    import zipfile

    gpu_wheels = load_bench_script("gpu_wheels")
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = [
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cpu.so",
        "bitsandbytes/libbitsandbytes_cuda124.so",
        "bitsandbytes/libbitsandbytes_cuda130.so",
        "bitsandbytes/libbitsandbytes_rocm72.so",
    ]
    with zipfile.ZipFile(wheel, "w") as z:
        for name in names:
            z.writestr(name, b"x" * 1000)
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "".join(f"{n},sha256=a,1000\n" for n in names))
    assert gpu_wheels.slim_wheel(wheel, "cuda13") > 0
    with zipfile.ZipFile(wheel) as z:
        kept = sorted(n for n in z.namelist() if not n.endswith("RECORD"))
        record = z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert kept == [names[0], names[1], names[3]]
    assert [line.split(",")[0] for line in record.splitlines()] == kept


@pytest.mark.slow
def test_methods_benchmark_needs_only_torch_transformers_peft():
    """The GPU machine may have nothing else: the benchmark must not import the rest of the stack."""
    code = (
        "import runpy, sys\n"
        "for name in ['datasets', 'click', 'deepspeed', 'lm_eval', 'matplotlib', 'tensorboard']:\n"
        "    sys.modules[name] = None  # importing any of them now raises ImportError\n"
        "sys.argv = ['methods.py', '--device', 'cpu', '--layers', '1', '--hidden', '64', '--intermediate', '172',"
        " '--heads', '4', '--vocab', '256', '--seq', '16', '--batch', '2', '--rounds', '1', '--steps', '1',"
        " '--methods', 'floor,rocoft-rows,lora-r8']\n"
        f"runpy.run_path({str(REPO / 'bench' / 'methods.py')!r}, run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| rocoft-rows |" in proc.stdout and "| lora-r8 |" in proc.stdout


def test_model_option_times_a_model_directory_and_writes_the_table_as_json(tmp_path):
    """``--model`` (what bench/compare_methods.py's cost stage runs): the directory's own shapes, the
    printed table and the JSON agree, trainable counts are exact for that model, the floor is 1.0x."""
    from transformers import AutoConfig

    model = REPO / "recipes" / "tiny" / "llama"
    out, rows = _run("--model", str(model), "--seq", "16", "--batch", "2", "--rounds", "1", "--steps", "1",
                     "--methods", "floor,rocoft-rows,rocoft-columns,full", "--json", str(tmp_path / "c.json"))  # fmt: skip
    table = json.loads((tmp_path / "c.json").read_text())
    assert table["meta"]["model"] == str(model) and table["meta"]["seq"] == 16
    c = AutoConfig.from_pretrained(model)
    h, i, layers, heads, kv = (c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                               c.num_attention_heads, c.num_key_value_heads)  # fmt: skip
    kv_dim = h // heads * kv
    # rows: r rows of each of q, k, v, o, gate, up, down (a row is as long as the layer's input)
    assert table["methods"]["rocoft-rows"]["trainable"] == layers * 3 * (h + h + h + h + h + h + i)
    # columns: r columns (a column is as long as the layer's output)
    assert table["methods"]["rocoft-columns"]["trainable"] == layers * 3 * (
        h + kv_dim + kv_dim + h + i + i + h
    )
    for name, row in table["methods"].items():
        assert rows[name]["trainable"] == row["trainable"]
        assert rows[name]["ms"] == pytest.approx(row["step_ms"], abs=0.05)
    assert table["methods"]["floor"]["x_floor"] == 1.0
    assert (
        table["methods"]["full"]["trainable"]
        == rows["full"]["trainable"]
        > table["methods"]["rocoft-rows"]["trainable"]
    )
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "methods.py"), "--model", str(model), "--layers", "2"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert proc.returncode != 0 and "has its own shapes: drop --layers" in proc.stderr


def test_real_model_results_table_shows_balanced_accuracy_beside_the_prior():
    """The side-by-side table bench/real_model.py prints (eval.tables.models_table): a model answering one label everywhere sits at the majority
    rate on plain accuracy and at exactly 1/K on the balanced row; counts from the summaries."""
    from rocoft_llm.eval.intervals import accuracy_cell

    real_model = load_bench_script("real_model")

    def summary(correct: int, balanced: float, top: str) -> dict:
        return {
            "task": "piqa:heldout",
            "n": 10,
            "protocol": accuracy_cell(correct, 10),
            "strict": accuracy_cell(correct, 10),
            "baselines": {"majority_label": "solution2", "majority_rate": 0.6, "chance_rate": 0.5},
            "balanced": {"accuracy": balanced, "constant_answer": 0.5},
            "top_prediction": {"pred": top, "count": 10},
        }

    table = real_model.models_table(
        {"base": [summary(1, 0.1, "")], "rocoft-rows": [summary(6, 0.5, "solution2")]}, "t"
    )
    assert (
        "| piqa:heldout | protocol | 10 | 60.0% (solution2) | 50.0% | 10.0% (1.8-40.4) | 60.0% (31.3-83.2) |"
        in table
    )
    assert (
        "| piqa:heldout | balanced (protocol) | 10 | any constant answer 50.0% | 50.0% | 10.0% | 50.0% |"
        in table
    )
    assert "| piqa:heldout | top prediction |  |  |  | (none) x10 | solution2 x10 |" in table
