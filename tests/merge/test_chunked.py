"""The row-block path equals the whole-tensor path (the streaming radix select included)."""

from __future__ import annotations

import pytest
import torch

from sealion.merge import METHODS, merge_tensor
from sealion.merge import chunked


def _run_chunked(name, base, models, params, chunk_elems, **options):
    spec = METHODS[name]
    opts = dict(spec.options)
    opts.update(options)
    assert chunked.can_chunk(spec, params, opts)
    rows = base.shape[0]
    row_elems = base[0].numel()
    out = []

    def read(r0, r1):
        return base[r0:r1], [m[r0:r1] for m in models]

    chunked.run(spec, rows, row_elems, chunk_elems, read, out.append, params, opts)
    assert len(out) > 1
    return torch.cat(out)


def _whole(name, base, models, params, **options):
    spec = METHODS[name]
    opts = dict(spec.options)
    opts.update(options)
    return merge_tensor(spec, base, models, params, opts)


@pytest.mark.parametrize("density", [0.5, 0.1, 0.999, 1.0])
def test_ties_chunked_equals_whole_with_many_ties(density):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(97, 13, generator=g)
    # quantised deltas: many exact ties in magnitude, across block boundaries
    models = [base + torch.randint(-4, 5, (97, 13), generator=g).float() / 8 for _ in range(3)]
    params = [{"weight": w, "density": density} for w in (0.3, 0.5, 1.0)]
    whole = _whole("ties", base, models, params)
    part = _run_chunked("ties", base, models, params, chunk_elems=50)
    assert torch.equal(whole, part)


@pytest.mark.parametrize("name", ["linear", "task_arithmetic", "ties"])
def test_elementwise_methods_chunked_equal_whole(name):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(40, 9, generator=g)
    models = [base + 0.1 * torch.randn(40, 9, generator=g) for _ in range(2)]
    params = [{"weight": 0.4, "density": 0.7}, {"weight": 0.6, "density": 0.7}]
    if name == "linear":
        assert torch.equal(_whole(name, None, models, params), _run_chunked(name, base, models, params, 64))
    else:
        assert torch.equal(_whole(name, base, models, params), _run_chunked(name, base, models, params, 64))


def test_slerp_chunked_close_to_whole():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(64, 8, generator=g)
    other = torch.randn(64, 8, generator=g)
    whole = _whole("slerp", base, [other], [{}], t=0.35)
    part = _run_chunked("slerp", base, [other], [{}], 100, t=0.35)
    torch.testing.assert_close(whole, part, rtol=0, atol=1e-6)


def test_chunked_ties_with_zero_deltas_keeps_exact_count():
    base = torch.zeros(30, 10)
    model = base.clone()
    model[3, 4] = 1.0  # one nonzero: the rest tie at zero magnitude
    params = [{"weight": 1.0, "density": 0.5}]
    assert torch.equal(_whole("ties", base, [model], params), _run_chunked("ties", base, [model], params, 40))


def test_methods_with_global_randomness_are_not_chunked():
    params = [{"weight": 1.0, "density": 0.5}]
    assert not chunked.can_chunk(METHODS["dare_ties"], params, dict(METHODS["dare_ties"].options))
    assert not chunked.can_chunk(METHODS["ties"], params, {**METHODS["ties"].options, "tie_break": "mergekit"})
    assert chunked.can_chunk(METHODS["dare_ties"], [{"weight": 1.0, "density": 1.0}], dict(METHODS["dare_ties"].options))
