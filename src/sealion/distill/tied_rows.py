"""A tied embedding's lookup gradient, added row by row into the table's gradient.

When the input embedding and the LM head share one [V, H] matrix, autograd gives the lookup a gradient of its own:
a zero-filled [V, H] tensor with the looked-up rows added in (embedding_dense_backward), which is then summed into
the head's gradient. At Gemma's vocabulary that is 670 MB written and read again every step, and at the step's
peak both copies are alive. Here the lookup's output is cut from the graph and a hook index-adds its rows into
`weight.grad`: whichever of the two arrives first creates it, and the other adds into it in place.

Only in one process: DDP and FSDP all-reduce a parameter's gradient when autograd accumulates it, before these
rows would arrive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TiedRowGradients:
    def __init__(self, emb: nn.Embedding, scale: torch.Tensor):
        self.emb, self.scale = emb, scale
        self.handle = emb.register_forward_hook(self._cut)

    @classmethod
    def install(cls, model, head_weight: torch.Tensor) -> TiedRowGradients | None:
        """The hook on `model`'s input embedding if it is tied to `head_weight` and a plain (scaled) lookup."""
        emb = model.get_input_embeddings()
        if not isinstance(emb, nn.Embedding) or emb.weight is not head_weight or not emb.weight.requires_grad:
            return None
        if emb.max_norm is not None or emb.sparse or emb.scale_grad_by_freq:
            return None
        # the lookup must be rows times one constant (nn.Embedding; Gemma's scaled embedding): checked, not assumed
        scale = getattr(emb, "embed_scale", torch.tensor(1.0))
        scale = torch.as_tensor(scale).to(emb.weight.dtype)
        with torch.no_grad():
            ids = torch.arange(min(8, emb.num_embeddings), device=emb.weight.device)
            if not torch.equal(emb(ids), F.embedding(ids, emb.weight) * scale):
                return None
        return cls(emb, scale)

    def _cut(self, module, args, out):
        if not (torch.is_grad_enabled() and out.requires_grad):
            return None
        ids = args[0]
        cut = out.detach().requires_grad_()
        cut.register_hook(lambda g: self._add_rows(ids, g))
        return cut

    def _add_rows(self, ids: torch.Tensor, g: torch.Tensor) -> None:
        w = self.emb.weight
        if w.grad is None:
            w.grad = torch.zeros_like(w)
        idx, rows = ids.reshape(-1), (g * self.scale).reshape(-1, w.shape[1]).to(w.grad.dtype)
        if self.emb.padding_idx is not None:  # nn.Embedding gives the padding row no gradient
            keep = idx != self.emb.padding_idx
            idx, rows = idx[keep], rows[keep]
        w.grad.index_add_(0, idx, rows)

    def remove(self) -> None:
        self.handle.remove()
