"""RoCoFT in a user's own training loop: the Python API under ``transformers.Trainer`` (no rocoft-llm
code runs between ``apply_rocoft`` and ``save_adapter``), and the saved adapter then loads through the
package's evaluation path and exports to peft like a CLI run's."""

import copy

import torch
from transformers import Trainer, TrainingArguments

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter
from rocoft_llm.eval.identity import load_for_eval
from rocoft_llm.rocoft.peft_export import export_peft
from tests.helpers.models import VOCAB, batch, tiny_model
from tests.helpers.tokenizers import save_tiny_tokenizer


class Records(torch.utils.data.Dataset):
    """Eight fixed random sequences; labels = inputs (the model shifts them)."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(3, VOCAB, (8, 12), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(12, dtype=torch.long),
            "labels": self.ids[i],
        }


def test_trainer_trains_saves_loads_and_exports(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = tiny_model("llama")
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    save_tiny_tokenizer(base_dir)  # the evaluation path loads the base's tokenizer
    model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(mode="column", rank=2, selection="random"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=Records()).train()
    model.eval()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    slices = {n for n in before if n.endswith(".rocoft_slice")}
    # only the slices train; each weight differs from its base only where its slice was written in
    assert changed - {n[: -len("rocoft_slice")] + "weight" for n in slices} == slices
    for name, module in model.named_modules():
        if hasattr(module, "rocoft_index"):
            keep = torch.ones(module.in_features, dtype=torch.bool)
            keep[module.rocoft_index] = False
            orig = base.get_submodule(name).weight
            assert torch.equal(module.weight[:, keep], orig[:, keep])

    save_adapter(model, tmp_path / "adapter", base_model=str(base_dir))
    b = batch(seed=7)
    with torch.no_grad():
        want = model(**b).logits
        evaluated, _, identity, _ = load_for_eval(adapter=str(tmp_path / "adapter"))
        torch.testing.assert_close(evaluated(**b).logits, want, rtol=1e-5, atol=1e-5)
        assert identity["adapter_sha256"] and identity["method"] == "rocoft"
        out = export_peft(tmp_path / "adapter", tmp_path / "peft")
        lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(out)).eval()
        torch.testing.assert_close(lora(**b).logits, want, rtol=1e-5, atol=1e-5)
