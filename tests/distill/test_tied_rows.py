"""The tied-embedding row hook gives the gradients plain autograd gives, with padding tokens in the batch."""

import pytest
import torch
import torch.nn.functional as F

from sealion.distill.modeling import hidden_states, load_model, output_projection
from sealion.distill.tied_rows import TiedRowGradients


@pytest.fixture(scope="module", params=["gemma3", "gemma4"])
def tiny_dir(request, tmp_path_factory):
    from sealion.models.tiny import make_tiny_gemma3, make_tiny_gemma4

    out = tmp_path_factory.mktemp(f"tied-{request.param}")
    return make_tiny_gemma3(out, seed=3, num_hidden_layers=2) if request.param == "gemma3" else make_tiny_gemma4(out, seed=3)


def _grads(model, ids, pos):
    """Every parameter's gradient of a loss through the lookup, the layers and the (tied) head, twice accumulated."""
    w, b = output_projection(model)
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(4)
    for _ in range(2):  # two micro-batches: the rows must add into a gradient that already exists
        h = hidden_states(model, ids, pos)
        loss = (F.linear(h, w, b) * torch.randn(h.shape[:-1] + (w.shape[0],), generator=g)).sum()
        loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_rows_hook_equals_autograd(tiny_dir):
    model = load_model(str(tiny_dir))[0].double()
    emb = model.get_input_embeddings()
    assert emb.weight is output_projection(model)[0] and emb.padding_idx is not None  # tied, with a padding row
    ids = torch.tensor([[2, 5, 9, 5, emb.padding_idx, 7], [emb.padding_idx, 11, 3, 3, 8, 1]])
    pos = torch.arange(ids.shape[1]).expand_as(ids)
    ref = _grads(model, ids, pos)
    hook = TiedRowGradients.install(model, output_projection(model)[0])
    assert hook is not None
    got = _grads(model, ids, pos)
    hook.remove()
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.allclose(ref[name], got[name], rtol=1e-10, atol=1e-12), name


def test_untied_or_unusual_lookups_are_left_alone(tiny_dir):
    model = load_model(str(tiny_dir))[0]
    other = torch.nn.Parameter(output_projection(model)[0].detach().clone())
    assert TiedRowGradients.install(model, other) is None  # not the head's matrix
    model.get_input_embeddings().max_norm = 1.0
    assert TiedRowGradients.install(model, output_projection(model)[0]) is None
