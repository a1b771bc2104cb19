"""Each method against an independent computation of its paper formula on small tensors (numpy, explicit loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sealion.merge import METHODS, merge_tensor
from sealion.merge import methods as M


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def run(name, base, models, params, **options):
    spec = METHODS[name]
    opts = {k: v for k, v in spec.options.items()}
    opts.update(options)
    return merge_tensor(spec, base, models, params, opts, seed=7, tensor_name="w")


def test_linear_is_weighted_mean():
    a, b, c = rand(4, 5, seed=1), rand(4, 5, seed=2), rand(4, 5, seed=3)
    w = [0.2, 0.5, 0.9]
    out = run("linear", None, [a, b, c], [{"weight": x} for x in w])
    ref = sum(wi * x.numpy().astype(np.float64) for wi, x in zip(w, (a, b, c))) / sum(w)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)
    raw = run("linear", None, [a, b], [{"weight": 0.3}, {"weight": 0.7}], normalize=False)
    np.testing.assert_allclose(raw.numpy(), 0.3 * a.numpy() + 0.7 * b.numpy(), rtol=1e-6)


def test_task_arithmetic_adds_scaled_task_vectors():
    base, a, b = rand(6, 3, seed=1), rand(6, 3, seed=2), rand(6, 3, seed=3)
    out = run("task_arithmetic", base, [a, b], [{"weight": 0.5}, {"weight": 1.5}], **{"lambda": 0.8})
    ref = base.numpy() + 0.8 * (0.5 * (a - base).numpy() + 1.5 * (b - base).numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def ties_reference(base, models, weights, density, normalize=True):
    """TIES (Yadav et al. 2023): trim each τ to its top-k magnitudes, elect the sign of Σ w τ, disjoint mean."""
    b = base.numpy().ravel().astype(np.float64)
    taus = []
    for m in models:
        tau = m.numpy().ravel().astype(np.float64) - b
        k = max(1, int(density * tau.size))
        order = sorted(range(tau.size), key=lambda i: (-abs(tau[i]), i))
        trimmed = np.zeros_like(tau)
        for i in order[:k]:
            trimmed[i] = tau[i]
        taus.append(trimmed)
    out = b.copy()
    for j in range(b.size):
        total = sum(w * t[j] for w, t in zip(weights, taus))
        sign = 1.0 if total >= 0 else -1.0
        num = den = 0.0
        for w, t in zip(weights, taus):
            if t[j] != 0 and math.copysign(1.0, w * t[j]) == sign:
                num += w * t[j]
                den += w
        if den != 0:
            out[j] += num / den if normalize else num
        elif num != 0:
            out[j] += num
    return out.reshape(base.shape)


def test_ties_matches_paper():
    base = rand(8, 7, seed=1)
    models = [base + rand(8, 7, seed=s) for s in (2, 3, 4)]
    w = [1.0, 0.5, 0.8]
    out = run("ties", base, models, [{"weight": x, "density": 0.4} for x in w])
    np.testing.assert_allclose(out.numpy(), ties_reference(base, models, w, 0.4), rtol=1e-5, atol=1e-6)


def test_ties_ties_break_toward_lower_index():
    base = torch.zeros(10)
    model = torch.tensor([1.0, 2, 2, 2, 0.5, 2, 1, 1, 2, 0.1])  # five entries tie at |τ| = 2
    out = run("ties", base, [model], [{"weight": 1.0, "density": 0.3}])
    assert out.tolist() == [0, 2, 2, 2, 0, 0, 0, 0, 0, 0]


def test_int8_mask_gives_same_result():
    base = rand(5, 5, seed=1)
    models = [base + rand(5, 5, seed=s) for s in (2, 3)]
    params = [{"weight": 1.0, "density": 0.6}] * 2
    assert torch.equal(run("ties", base, models, params), run("ties", base, models, params, int8_mask=True))


def test_slerp_matches_formula():
    a, b = rand(10, seed=1), rand(10, seed=2)
    t = 0.3
    out = run("slerp", a, [b], [{}], t=t)
    va, vb = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    omega = math.acos(np.dot(va / np.linalg.norm(va), vb / np.linalg.norm(vb)))
    ref = math.sin((1 - t) * omega) / math.sin(omega) * va + math.sin(t * omega) / math.sin(omega) * vb
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    # nearly colinear directions fall back to linear interpolation
    out2 = run("slerp", a, [a * 2], [{}], t=0.25)
    np.testing.assert_allclose(out2.numpy(), (0.75 * va + 0.25 * 2 * va), rtol=1e-6)
    assert torch.equal(run("slerp", a, [b], [{}], t=0.0), a)


def test_model_stock_matches_paper():
    base = rand(30, seed=1)
    models = [base + rand(30, seed=s) * 0.1 + 0.05 for s in (2, 3, 4)]
    out = run("model_stock", base, models, [{}] * 3)
    b = base.numpy().astype(np.float64)
    taus = [m.numpy().astype(np.float64) - b for m in models]
    cos = [np.dot(taus[i], taus[j]) / (np.linalg.norm(taus[i]) * np.linalg.norm(taus[j]))
           for i in range(3) for j in range(i + 1, 3)]
    c = float(np.mean(cos))
    t = 3 * c / (1 + 2 * c)
    ref = t * np.mean([m.numpy() for m in models], axis=0) + (1 - t) * b
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_dare_drop_and_rescale():
    base = torch.zeros(2000)
    model = rand(2000, seed=3)
    out_paper = run("dare_linear", base, [model], [{"weight": 1.0, "density": 0.3}], rescale_mode="inverse")
    kept = out_paper != 0
    assert 0.25 < kept.float().mean().item() < 0.35
    # survivors are scaled by 1/p (DARE paper), dropped entries are zero
    np.testing.assert_allclose(out_paper[kept].numpy(), model[kept].numpy() / 0.3, rtol=1e-6)
    out_l1 = run("dare_linear", base, [model], [{"weight": 1.0, "density": 0.3}])
    assert torch.equal(out_l1 != 0, kept)  # same mask under the same seed
    assert math.isclose(out_l1.abs().sum().item(), model.abs().sum().item(), rel_tol=1e-5)  # L1 preserved
    assert torch.equal(out_l1, run("dare_linear", base, [model], [{"weight": 1.0, "density": 0.3}]))  # deterministic


def test_dare_seed_changes_mask():
    spec = METHODS["dare_ties"]
    opts = dict(spec.options)
    base, model = torch.zeros(500), rand(500, seed=1)
    p = [{"weight": 1.0, "density": 0.5}]
    a = merge_tensor(spec, base, [model], p, opts, seed=1, tensor_name="x")
    b = merge_tensor(spec, base, [model], p, opts, seed=2, tensor_name="x")
    c = merge_tensor(spec, base, [model], p, opts, seed=1, tensor_name="x")
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_della_keep_probability_follows_magnitude_rank():
    tau = torch.tensor([[0.1, -3.0, 2.0, 0.5, -1.0]])
    probs = M.della_keep_probs(tau, 0.5, 0.2)
    # rank by |τ| within the row: 0.1 < 0.5 < 1.0 < 2.0 < 3.0 -> 0.3 .. 0.7 linearly
    expect = {0: 0.3, 3: 0.4, 4: 0.5, 2: 0.6, 1: 0.7}
    for i, p in expect.items():
        assert math.isclose(probs[0, i].item(), p, rel_tol=1e-6)
    base = torch.zeros(4, 400)
    model = rand(4, 400, seed=5)
    out = run("della_linear", base, [model], [{"weight": 1.0, "density": 0.5, "epsilon": 0.2}], rescale_mode="inverse")
    kept = out != 0
    probs = M.della_keep_probs(model, 0.5, 0.2)
    np.testing.assert_allclose(out[kept].numpy(), (model / probs)[kept].numpy(), rtol=1e-5)
    big = model.abs() > model.abs().median(dim=1, keepdim=True).values
    assert kept[big].float().mean() > kept[~big].float().mean()  # larger entries survive more often


def test_breadcrumbs_drops_both_tails():
    base = torch.zeros(100)
    model = torch.arange(1, 101, dtype=torch.float32) * torch.tensor([1.0, -1.0]).repeat(50)
    out = run("breadcrumbs", base, [model], [{"weight": 1.0, "density": 0.8, "gamma": 0.05}])
    mags = out.abs()
    kept = sorted(int(x) for x in mags[mags > 0].tolist())
    assert kept == list(range(16, 96))  # 15 smallest and 5 largest dropped, 80 kept


def test_every_registered_method_runs_on_one_shape():
    base = rand(6, 4, seed=1)
    models = [base + 0.1 * rand(6, 4, seed=s) for s in (2, 3)]
    for name, spec in METHODS.items():
        if spec.max_models == 1:
            ms, params = models[:1], [{}]
        else:
            ms = models
            params = [{"weight": 0.5, "density": 0.6} for _ in ms]
        opts = dict(spec.options)
        if "t" in opts:
            opts["t"] = 0.5
        out = merge_tensor(spec, base if spec.needs_base else None, ms if spec.needs_base else [base] + ms,
                           params if spec.needs_base else [{"weight": 1.0}] + params, opts, seed=0, tensor_name="x")
        assert out.shape == base.shape and torch.isfinite(out).all(), name
