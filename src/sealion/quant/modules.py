"""Weight-only quantised layers on PyTorch's own CPU kernels (no custom C/C++):

- `Int8Linear`: int8 weights, one scale per output row, `torch.ops.aten._weight_int8pack_mm`;
- `Int4Linear`: asymmetric int4 weights with a scale and zero point per group of `group_size` inputs,
  `torch.ops.aten._weight_int4pack_mm_for_cpu` on the layout `_convert_weight_to_int4pack_for_cpu` makes;
- `QuantEmbedding`: an embedding table stored the same way (int8 rows or int4 groups), rows dequantised on lookup,
  the Gemma embedding scale applied as the model's own `ScaledWordEmbedding` does.

Activations enter the kernels in bfloat16: both kernels are several times faster with bf16 than with fp32 inputs
on x86 (they accumulate in fp32), and the layer returns the caller's dtype.

What is saved (`state_dict`) is the portable form: int8 rows, or int4 codes two to a byte (low nibble first) with
[groups, rows, 2] (scale, zero) tables; the CPU-packed int4 layout is rebuilt on load, which is not re-quantising.
"""

from __future__ import annotations

import torch
from torch import nn

ACT_DTYPE = torch.bfloat16


# ---- quantisers (fp32 weight -> codes + scales) ----------------------------------------------------------------


def quantize_int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (codes int8 [N, K], scales fp32 [N]) with w ~= codes * scales[:, None]."""
    w = w.detach()
    codes = torch.empty(w.shape, dtype=torch.int8, device=w.device)
    scales = torch.empty(w.shape[0], dtype=torch.float32, device=w.device)
    for rows in row_blocks(w.shape[0]):
        block = w[rows].float()
        scales[rows] = (block.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        codes[rows] = torch.round(block / scales[rows, None]).clamp(-127, 127).to(torch.int8)
    return codes, scales


QUANT_ROWS_PER_BLOCK = 16384  # rows quantised per step (16384 x 640 fp32: 42 MB of temporaries)


def row_blocks(n: int):
    """Slices of at most QUANT_ROWS_PER_BLOCK rows covering n rows: quantisation works a block at a time, since
    whole-matrix float temporaries of a 262k-row head would be GBs at start-up."""
    for start in range(0, n, QUANT_ROWS_PER_BLOCK):
        yield slice(start, start + QUANT_ROWS_PER_BLOCK)


def quantize_int4_groups(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group of `group_size` columns: (nibbles uint8 [N, K/2], scales_and_zeros fp32
    [K/group, N, 2]) with w ~= (code - 8) * scale + zero, code in 0..15 (the kernel's convention)."""
    w = w.detach()
    n, k = w.shape
    nibbles = torch.empty((n, k // 2), dtype=torch.uint8, device=w.device)
    sz = torch.empty((k // group_size, n, 2), dtype=torch.float32, device=w.device)
    for rows in row_blocks(n):
        g = w[rows].float().reshape(-1, k // group_size, group_size)
        lo, hi = g.amin(dim=-1, keepdim=True), g.amax(dim=-1, keepdim=True)
        scale = ((hi - lo) / 15.0).clamp(min=1e-12)
        codes = torch.round((g - lo) / scale).clamp(0, 15).to(torch.uint8).reshape(-1, k)
        zero = lo + 8.0 * scale  # value of code 8: the kernel computes (code - 8) * scale + zero
        nibbles[rows] = pack_nibbles(codes)
        sz[:, rows] = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1).transpose(0, 1)
    return nibbles, sz


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    out = torch.empty((packed.shape[0], packed.shape[1] * 2), dtype=torch.uint8)
    out[:, 0::2] = packed & 0x0F
    out[:, 1::2] = packed >> 4
    return out


def dequantize_int4_rows(nibbles: torch.Tensor, sz: torch.Tensor, group_size: int) -> torch.Tensor:
    """fp32 rows from int4 codes [n, K/2] and their (scale, zero) [K/group, n, 2]."""
    codes = unpack_nibbles(nibbles).float()
    n, k = codes.shape
    scale = sz[..., 0].t().repeat_interleave(group_size, dim=1)
    zero = sz[..., 1].t().repeat_interleave(group_size, dim=1)
    return (codes - 8.0) * scale + zero


def int8_fits(k: int) -> bool:
    """torch 2.13's int8 CPU kernel needs inputs in multiples of 16 (others crash it, with a batch of >= 4 rows)."""
    return k % 16 == 0


def int4_fits(n: int, k: int, group_size: int) -> bool:
    """The CPU int4 kernel needs rows in multiples of 16 and whole groups."""
    return n % 16 == 0 and k % group_size == 0 and k % 2 == 0


# ---- layers ---------------------------------------------------------------------------------------------------


class _QuantLinear(nn.Module):
    """Shared by the int8/int4 linears: shapes, bias, dtype handling. Not an `nn.Linear` on purpose: code that
    reads `.weight` of a Linear (the engine's bf16 greedy screen) must not take it for a float layer."""

    bits = 0

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    def _mm(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = self._mm(x.reshape(-1, shape[-1]).to(ACT_DTYPE).contiguous()).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


class Int8Linear(_QuantLinear):
    bits = 8

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__(codes.shape[1], codes.shape[0], bias)
        self.register_buffer("qweight", codes.contiguous())
        self.register_buffer("scales", scales.float().contiguous())
        self._scales_act = self.scales.to(ACT_DTYPE)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        return cls(*quantize_int8_rows(linear.weight), linear.bias)

    def _load_from_state_dict(self, *args, **kw):
        super()._load_from_state_dict(*args, **kw)
        self._scales_act = self.scales.to(ACT_DTYPE)

    def _mm(self, x):
        return torch.ops.aten._weight_int8pack_mm(x, self.qweight, self._scales_act)


class Int4Linear(_QuantLinear):
    bits = 4

    def __init__(self, nibbles: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int,
                 bias: torch.Tensor | None = None):
        super().__init__(nibbles.shape[1] * 2, nibbles.shape[0], bias)
        self.group_size = group_size
        self.register_buffer("qweight", nibbles.contiguous())
        self.register_buffer("scales_and_zeros", scales_and_zeros.float().contiguous())
        self._pack()

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int) -> "Int4Linear":
        return cls(*quantize_int4_groups(linear.weight, group_size), group_size, linear.bias)

    def _pack(self) -> None:
        codes = unpack_nibbles(self.qweight).to(torch.int32)
        self._packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        self._sz_act = self.scales_and_zeros.to(ACT_DTYPE)

    def _load_from_state_dict(self, *args, **kw):
        super()._load_from_state_dict(*args, **kw)
        self._pack()

    def _mm(self, x):
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self._packed, self.group_size, self._sz_act)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", group_size={self.group_size}"


class _RowView:
    """`embedding.weight[i, ...]` for code that indexes a few rows of the table (Gemma 4's multimodal path reads
    the pad row) without dequantising all of it."""

    def __init__(self, emb: "QuantEmbedding"):
        self._emb = emb
        self.shape = torch.Size((emb.num_embeddings, emb.embedding_dim))
        self.dtype = emb.out_dtype
        self.device = emb.qweight.device
        self.requires_grad = False

    def __getitem__(self, key):
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        ids = torch.arange(self.shape[0])[rows]
        out = self._emb.rows(ids.reshape(-1)).reshape(*ids.shape, self.shape[1])
        return out[(slice(None),) * ids.dim() + rest] if rest else out


class QuantEmbedding(nn.Module):
    """An embedding table in int8 rows or int4 groups; `forward(ids)` = dequantised rows * embed_scale."""

    def __init__(self, bits: int, qweight: torch.Tensor, scales: torch.Tensor, *, group_size: int = 0,
                 embed_scale: float = 1.0, padding_idx: int | None = None, out_dtype=torch.float32):
        super().__init__()
        self.bits, self.group_size, self.padding_idx = bits, group_size, padding_idx
        self.num_embeddings = qweight.shape[0]
        self.embedding_dim = qweight.shape[1] * (2 if bits == 4 else 1)
        self.register_buffer("qweight", qweight.contiguous())
        self.register_buffer("scales", scales.float().contiguous())
        self.scalar_embed_scale = float(embed_scale)
        self.out_dtype = out_dtype

    @classmethod
    def from_embedding(cls, emb: nn.Embedding, bits: int, group_size: int) -> "QuantEmbedding":
        scale = float(getattr(emb, "scalar_embed_scale", 1.0))
        if bits == 8:
            q, s = quantize_int8_rows(emb.weight)
            return cls(8, q, s, embed_scale=scale, padding_idx=emb.padding_idx, out_dtype=emb.weight.dtype)
        q, sz = quantize_int4_groups(emb.weight, group_size)
        return cls(4, q, sz, group_size=group_size, embed_scale=scale, padding_idx=emb.padding_idx,
                   out_dtype=emb.weight.dtype)

    @property
    def weight(self) -> _RowView:
        return _RowView(self)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """Dequantised rows (without the embedding scale) for flat ids."""
        if self.bits == 8:
            out = self.qweight.index_select(0, ids).float() * self.scales.index_select(0, ids)[:, None]
        else:
            out = dequantize_int4_rows(self.qweight.index_select(0, ids), self.scales.index_select(1, ids),
                                       self.group_size)
        return out.to(self.out_dtype)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        flat = input_ids.reshape(-1)
        out = self.rows(flat).reshape(*input_ids.shape, self.embedding_dim)
        # the model's ScaledWordEmbedding multiplies by the scale in the weights' dtype: so do we
        return out * torch.tensor(self.scalar_embed_scale, dtype=self.out_dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits={self.bits}" + (
            f", group_size={self.group_size}" if self.bits == 4 else "")
