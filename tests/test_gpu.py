"""CUDA checks (marked gpu; they run where a GPU is visible and are skipped elsewhere): the layer in
bf16 on the GPU against an fp32 reference, and a tiny bf16 training run on one GPU."""

import pytest
import torch
from torch import nn

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("mode", ["row", "column"])
def test_layer_bf16_on_cuda_matches_fp32(mode):
    from rocoft_llm.rocoft.layer import RoCoFTLinear

    torch.manual_seed(0)
    ref = nn.Linear(256, 192).cuda()
    lin = nn.Linear(256, 192).cuda().to(torch.bfloat16)
    lin.load_state_dict({k: v.to(torch.bfloat16) for k, v in ref.state_dict().items()})
    layer = RoCoFTLinear(lin, torch.tensor([3, 50, 100]), mode)
    x = torch.randn(4, 32, 256, device="cuda")
    y = layer(x.to(torch.bfloat16))
    torch.testing.assert_close(y.float(), ref(x), rtol=0.05, atol=0.05)
    g = torch.randn_like(y)
    y.backward(g)
    ref.weight.requires_grad_(True)
    ref(x).backward(g.float())
    idx = layer.rocoft_index
    want = ref.weight.grad[idx] if mode == "row" else ref.weight.grad[:, idx]
    assert layer.rocoft_slice.grad.dtype == torch.float32
    torch.testing.assert_close(layer.rocoft_slice.grad, want, rtol=0.05, atol=0.5)


def test_tiny_bf16_training_on_one_gpu(tmp_path):
    from rocoft_llm.train.run import train
    from tests.helpers.recipes import losses, tiny_recipe

    out = train(
        str(
            tiny_recipe(
                tmp_path,
                "gpu",
                model={"dtype": "bfloat16"},
                train={"precision": "bf16", "max_steps": 20, "lr": 0.05},
            )
        )
    )
    curve = losses(out)
    assert curve[-1] < curve[0]
