"""Global-batch plan and collation: rank-independent batches; EOS kept in labels even when pad == EOS."""

import torch

from rocoft_llm.train.batching import BatchPlan, collate, target_tokens


def test_global_batches_do_not_depend_on_world_size_or_micro_batch():
    a = BatchPlan(num_examples=50, global_batch=8, micro_batch=4, world=1, seed=3)
    b = BatchPlan(num_examples=50, global_batch=8, micro_batch=2, world=2, seed=3)
    assert a.steps_per_epoch == 6 and a.accumulation == 2 and b.accumulation == 2
    for step in range(14):  # crosses epoch boundaries
        assert a.global_indices(step) == b.global_indices(step)
        union = sorted(i for r in range(2) for micro in b.micro_indices(step, r) for i in micro)
        assert union == sorted(a.global_indices(step))
    assert a.global_indices(0) != a.global_indices(6)  # a new epoch is reshuffled
    assert sorted(sum((a.global_indices(s) for s in range(6)), [])) == sorted(
        set(sum((a.global_indices(s) for s in range(6)), []))
    )


def test_collate_masks_padding_by_attention_not_by_pad_id():
    eos = pad = 2  # the Llama-2 trap: pad id == EOS id
    examples = [
        {"input_ids": [1, 5, 6, eos], "labels": [-100, 5, 6, eos]},
        {"input_ids": [1, 7], "labels": [1, 7]},
    ]
    batch = collate(examples, pad_id=pad)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 7, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 5, 6, 2], [1, 7, -100, -100]]  # EOS learned, padding ignored
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert target_tokens(examples[0]["labels"]) == 3 and target_tokens(examples[1]["labels"]) == 1
    assert batch["input_ids"].dtype == torch.long
