"""Run under `torchrun --nproc-per-node 2`: RoCoFT + FSDP2 (fully_shard per block) on CPU/gloo.

For each CASE (``MODE:ARCH``; ARCH a tiny model of tests/helpers/models.py), in one launch (the
process start and the process group are paid once): each rank picks random indices with a
DIFFERENT seed (apply_rocoft must broadcast rank 0's), the frozen weights and slices are sharded,
STEPS AdamW steps run on each rank's half of a global batch, and the adapter is saved to
OUT_DIR/adapter-MODE-ARCH (slices gathered one by one). Usage: SCRIPT OUT_DIR STEPS CASE [CASE ...]
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
from rocoft_llm.architectures import get_architecture
from tests.helpers.models import batch, mode_settings, tiny_model


def train_one(out: Path, steps: int, mode: str, arch: str) -> None:
    from torch.distributed.fsdp import fully_shard

    rank, world = dist.get_rank(), dist.get_world_size()
    model = tiny_model(arch)
    apply_rocoft(
        model,
        RoCoFTConfig(**{"rank": 3, "selection": "random", "seed": 100 + rank, **mode_settings(mode)}),
    )
    block = get_architecture(arch).block_classes[arch]
    for module in model.modules():
        if type(module).__name__ == block:
            fully_shard(module)
    fully_shard(model)
    frozen = model.model.layers[0].mlp.down_proj.weight
    assert frozen.__class__.__name__ == "DTensor" and frozen.to_local().shape[0] == frozen.shape[0] // world
    opt = torch.optim.AdamW(trainable_parameters(model).values(), lr=0.02)
    for s in range(steps):
        full = batch(seed=s, bsz=4)
        local = {k: v[rank * 2 : (rank + 1) * 2] for k, v in full.items()}
        loss = model(**local, labels=local["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    save_adapter(model, out)
    dist.barrier()


def main(out_dir: str, steps: int, cases: list[str]) -> None:
    dist.init_process_group("gloo")
    for case in cases:
        mode, arch = case.split(":")
        train_one(Path(out_dir) / f"adapter-{mode}-{arch}", steps, mode, arch)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
