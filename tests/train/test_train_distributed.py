"""2 CPU ranks (torchrun, gloo): DDP, FSDP2 and ZeRO-3 give the single-process slices and losses on
the same global batches (padded or packed); frozen weights, slices and optimizer state are really sharded; resume works under FSDP2 and ZeRO-3."""

import json

import pytest
import torch

from rocoft_llm.errors import RoCoFTError
from rocoft_llm.rocoft.adapter import read_adapter_tensors
from rocoft_llm.train.backends import FSDP_OPTIMIZER_DIR
from rocoft_llm.train.run import train
from tests.helpers.recipes import STEPS, assert_same_run, losses, tiny_recipe
from tests.helpers.torchrun import torchrun


def torchrun_train(recipe, *overrides, env_extra=None, timeout=400, expect=0, nproc=2):
    return torchrun(
        "-m",
        "rocoft_llm.cli",
        "train",
        recipe,
        *overrides,
        env_extra=env_extra,
        timeout=timeout,
        expect=expect,
        nproc=nproc,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    return tmp, train(str(tiny_recipe(tmp, "single", train={"micro_batch_size": 2})))


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ddp", "fsdp", "deepspeed"])
def test_two_ranks_match_single_process(reference, tmp_path, backend):
    ref_tmp, ref = reference
    dist = {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})}
    recipe = tiny_recipe(tmp_path, backend, train={"micro_batch_size": 2}, dist=dist)
    extensions = tmp_path / "torch_extensions"  # where DeepSpeed would JIT-build its CPU ops
    torchrun_train(recipe, env_extra={"TORCH_EXTENSIONS_DIR": str(extensions)})
    if backend == "deepspeed":  # the only backend that could compile one
        assert not extensions.exists(), "DeepSpeed compiled an op on CPU (distributed.skip_deepspeed_shm_op)"
    run = tmp_path / backend
    assert_same_run(run, ref)
    summary = json.loads((run / "summary.json").read_text())
    single = json.loads((ref / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["gradient_accumulation"] == 2
    # what rank 0 holds: fp32 slices (4 bytes each); AdamW's two moments per slice (+ 4-byte step counters)
    assert single["trainable_param_bytes_rank0"] == 4 * single["trainable_parameters"]
    moments = 2 * single["trainable_param_bytes_rank0"]
    assert moments <= single["optimizer_state_bytes_rank0"] <= moments + 4 * 64
    ratios = {
        key: summary[key] / single[key]
        for key in ("frozen_param_bytes_rank0", "trainable_param_bytes_rank0", "optimizer_state_bytes_rank0")
    }
    if backend == "ddp":
        assert ratios == pytest.approx(dict.fromkeys(ratios, 1.0))  # DDP replicates everything
    elif backend == "fsdp":  # all three sharded over 2 ranks
        assert all(0.45 <= r <= 0.6 for r in ratios.values()), ratios
    else:  # ZeRO-3: sharded too, and the optimizer adds a fp32 master partition beside the moments: 3/2 / 2
        assert 0.45 <= ratios["frozen_param_bytes_rank0"] <= 0.6, ratios
        assert 0.45 <= ratios["trainable_param_bytes_rank0"] <= 0.6, ratios
        assert 0.7 <= ratios["optimizer_state_bytes_rank0"] <= 0.8, ratios


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ddp", "fsdp", "deepspeed"])
def test_two_ranks_packed_match_single_process_padded(reference, tmp_path, backend):
    """train.packing under every backend: each rank packs its micro-batches (rows of different
    lengths per rank), and the run is the padded single-process run."""
    _, ref = reference
    dist = {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})}
    recipe = tiny_recipe(tmp_path, backend, train={"micro_batch_size": 2, "packing": True}, dist=dist)
    torchrun_train(recipe)
    assert_same_run(tmp_path / backend, ref, tol=1e-4)


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "ranks"), [("fsdp", (2, 1, 2)), ("deepspeed", (2, 2))], ids=["fsdp-2-1-2", "deepspeed-2-2"]
)
def test_resume_under_sharding(reference, tmp_path, backend, ranks):
    """Stopped and resumed (once per launch after the first), the run equals the uninterrupted
    single-process one; FSDP2's optimizer shards go through torch.distributed.checkpoint, so each
    resume may use another number of ranks (a requeued SLURM job that gets fewer nodes, or more,
    continues): 2 ranks -> 1 -> 2 in one run."""
    _, ref = reference
    ranks = ranks[: max(2, min(len(ranks), STEPS))]  # ROCOFT_TEST_STEPS=2 leaves room for one stop
    dist = {"backend": backend, **({"zero_stage": 3} if backend == "deepspeed" else {})}
    recipe = tiny_recipe(tmp_path, backend, train={"micro_batch_size": 2}, dist=dist)
    stops = [STEPS * k // len(ranks) for k in range(1, len(ranks))]
    for i, nproc in enumerate(ranks):
        resume = ["train.resume=auto"] if i else []
        stop_env = {"ROCOFT_STOP_AT_STEP": str(stops[i])} if i < len(stops) else None
        proc = torchrun_train(recipe, *resume, env_extra=stop_env, expect=1 if stop_env else 0, nproc=nproc)
        if i:
            assert f"at step {stops[i - 1]}" in proc.stderr
        if stop_env:
            assert "train.resume=auto" in proc.stderr
            ckpt = tmp_path / backend / "checkpoints" / f"step-{stops[i]:08d}"
            assert (ckpt / "COMPLETE.json").is_file()
            if backend == "fsdp":
                assert (ckpt / FSDP_OPTIMIZER_DIR / ".metadata").is_file()
    assert_same_run(tmp_path / backend, ref)
    assert json.loads((tmp_path / backend / "summary.json").read_text())["world_size"] == ranks[-1]


@pytest.mark.distributed
@pytest.mark.slow
def test_zero3_zero_init_loading_matches_single_process(reference, tmp_path):
    """dist.zero_init: the pretrained base is loaded already partitioned (zero.Init via HfDeepSpeedConfig)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.helpers.recipes import TINY

    _, ref = reference
    base = tmp_path / "base"
    torch.manual_seed(7)  # the reference run's train.seed: the same weights it built with random_init
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (base / name).write_bytes((TINY / "llama" / name).read_bytes())
    recipe = tiny_recipe(
        tmp_path,
        "zi",
        model={"name_or_path": str(base), "random_init": False},
        train={"micro_batch_size": 2},
        dist={"backend": "deepspeed", "zero_stage": 3, "zero_init": True},
    )
    torchrun_train(recipe)
    assert_same_run(tmp_path / "zi", ref)


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp2_bf16_mixed_precision_runs_close_to_single_process(tmp_path):
    """bf16 compute: FSDP2 MixedPrecisionPolicy (bf16 params, fp32 reduce) vs one process under autocast."""
    common = {"micro_batch_size": 2, "precision": "bf16"}
    single = train(str(tiny_recipe(tmp_path, "single", train=common)))
    recipe = tiny_recipe(tmp_path, "fsdp", train=common, dist={"backend": "fsdp"})
    torchrun_train(recipe)
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(single), rel=2e-2)
    got = read_adapter_tensors(tmp_path / "fsdp" / "adapter")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in got.values())


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp2_on_one_process_under_torchrun_matches_single_process(reference, tmp_path):
    """FSDP2 with one rank (a single GPU) is launched by torchrun: same slices and losses as no backend."""
    _, ref = reference
    recipe = tiny_recipe(tmp_path, "fsdp1", train={"micro_batch_size": 2}, dist={"backend": "fsdp"})
    torchrun_train(recipe, nproc=1)
    assert_same_run(tmp_path / "fsdp1", ref)
    summary = json.loads((tmp_path / "fsdp1" / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["gradient_accumulation"] == 4


def test_fsdp_without_a_process_group_says_how_to_launch(tmp_path):
    recipe = tiny_recipe(tmp_path, "nopg", dist={"backend": "fsdp"})
    with pytest.raises(RoCoFTError, match=r"needs a process group: launch with `torchrun --nproc-per-node N"):
        train(str(recipe))


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp2_splits_odd_rank_row_slices_evenly_and_trains_the_same(tmp_path):
    """Row slices with r = 3 rows on 2 ranks: sharded along in_features (1/2 each, not 2:1 rows),
    and the run is the single-process run."""
    common = {"rocoft": {"rank": 3}, "train": {"micro_batch_size": 2}}
    single = train(str(tiny_recipe(tmp_path, "single3", **common)))
    recipe = tiny_recipe(tmp_path, "fsdp3", dist={"backend": "fsdp"}, **common)
    torchrun_train(recipe)
    assert_same_run(tmp_path / "fsdp3", single)
    got = json.loads((tmp_path / "fsdp3" / "summary.json").read_text())
    ref = json.loads((single / "summary.json").read_text())
    assert got["trainable_param_bytes_rank0"] * 2 == ref["trainable_param_bytes_rank0"]
    # optimizer state = two AdamW moments per slice element (sharded) + one 4-byte step counter per slice
    counters = ref["optimizer_state_bytes_rank0"] - 2 * ref["trainable_param_bytes_rank0"]
    assert got["optimizer_state_bytes_rank0"] - 2 * got["trainable_param_bytes_rank0"] == counters
    assert 0 < counters < 1024
