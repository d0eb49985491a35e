"""Run under `torchrun --nproc-per-node 2`: RoCoFT + DeepSpeed ZeRO-3 on CPU/gloo.

For each MODE, in one launch (process start and DeepSpeed's set-up paid once): the model is built
partitioned (zero.Init through HfDeepSpeedConfig + from_pretrained), so apply_rocoft must read
shapes from ds_shape and gather each weight for selection; each rank picks random indices with a
different seed (rank 0's are broadcast); STEPS steps; the adapter is saved to OUT_DIR/adapter-MODE
gathering only the slices. Usage: SCRIPT OUT_DIR STEPS BASE_DIR MODE [MODE ...]
"""

import sys
from pathlib import Path

import deepspeed
import torch
import torch.distributed as dist

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
from rocoft_llm.distributed import init_distributed
from tests.helpers.models import batch, mode_settings


def train_one(out: Path, steps: int, mode: str, base_dir: str) -> None:
    from transformers import AutoModelForCausalLM
    from transformers.integrations import HfDeepSpeedConfig

    rank = dist.get_rank()
    ds_config = {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
        "zero_force_ds_cpu_optimizer": False,
        "gradient_clipping": 0.0,
        "steps_per_print": 10**9,
    }
    keep = HfDeepSpeedConfig(ds_config)  # noqa: F841 - must stay alive for zero.Init loading
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    w = model.model.layers[0].mlp.down_proj.weight
    assert hasattr(w, "ds_shape") and w.numel() == 0, "weights are not partitioned at load"
    apply_rocoft(
        model, RoCoFTConfig(**{"rank": 3, "selection": "random", "seed": 100 + rank, **mode_settings(mode)})
    )
    opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=0.02)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config)
    for s in range(steps):
        full = batch(seed=s, bsz=4)
        local = {k: v[rank * 2 : (rank + 1) * 2] for k, v in full.items()}
        loss = engine(**local, labels=local["input_ids"]).loss
        engine.backward(loss)
        engine.step()
    save_adapter(engine.module, out)
    engine.destroy()
    dist.barrier()


def main(out_dir: str, steps: int, base_dir: str, modes: list[str]) -> None:
    init_distributed("deepspeed", 5)  # the product's start: gloo, no JIT-built shared-memory op
    for mode in modes:
        train_one(Path(out_dir) / f"adapter-{mode}", steps, mode, base_dir)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:])
