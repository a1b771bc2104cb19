"""Merge methods as pure functions over whole tensors, plus one registry that describes them.

Notation: base θ0, models θ_i, task vectors τ_i = θ_i − θ0, weights w_i. Every function takes float32 tensors
and returns a new tensor; none touches files. Arithmetic follows mergekit's order of operations (stack, weight,
sum over the model axis, then divide) so float32 outputs match it bit for bit where the method is deterministic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

Tensor = torch.Tensor


# ---------------------------------------------------------------- helpers


def _weights(weights: Sequence[float], like: Tensor) -> Tensor:
    """Weights as a float tensor shaped to broadcast over a stacked [N, *shape] tensor."""
    w = torch.tensor([float(x) for x in weights], dtype=like.dtype)
    return w.view(-1, *([1] * (like.dim() - 1)))


def generator_for(seed: int, tensor_name: str, model_index: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, tensor, model): resumable and order-independent."""
    digest = hashlib.sha256(f"{seed}\0{tensor_name}\0{model_index}".encode()).digest()
    g = torch.Generator()
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


def rescale_l1(original: Tensor, masked: Tensor, eps: float = 1e-7) -> Tensor:
    """Scale `masked` so its L1 norm equals that of `original` (mergekit's rescale)."""
    before = original.abs().sum()
    after = masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def topk_mask(values: Tensor, k: int, tie_break: str = "index") -> Tensor:
    """Boolean mask of the k largest entries of a flat tensor. Ties go to the lower index (a stable sort), or with
    tie_break="mergekit" to whichever torch.argsort(descending=True) puts first (mergekit's unspecified order)."""
    n = values.numel()
    mask = torch.zeros(n, dtype=torch.bool)
    if k <= 0:
        return mask
    if k >= n:
        return ~mask
    flat = values.reshape(-1)
    if tie_break == "mergekit":
        mask[torch.argsort(flat, descending=True)[:k]] = True
        return mask
    # O(n): the k-th largest value, everything above it, then the first ties by position
    threshold = torch.kthvalue(flat, n - k + 1).values
    mask = flat > threshold
    need = k - int(mask.sum())
    if need > 0:
        eq = flat == threshold
        mask |= eq & (eq.cumsum(0) <= need)
    return mask


# ---------------------------------------------------------------- sparsifiers (one task vector at a time)


def keep_count(density: float, n: int) -> int:
    """int(density·n) entries, but at least one: a 1-element tensor (Gemma 4's layer_scalar) keeps its delta
    instead of failing as mergekit's assertion does."""
    return max(1, int(density * n))


def sparsify_magnitude(tau: Tensor, density: float, rescale: bool = False, tie_break: str = "index") -> Tensor:
    """TIES trim: keep the int(density·n) largest |τ| entries, zero the rest."""
    if density >= 1:
        return tau
    k = keep_count(density, tau.numel())
    masked = tau * topk_mask(tau.abs(), k, tie_break).view(tau.shape)
    return rescale_l1(tau, masked) if rescale else masked


def sparsify_breadcrumbs(tau: Tensor, density: float, gamma: float, rescale: bool = False) -> Tensor:
    """Model Breadcrumbs: drop the gamma·n largest |τ| (outliers) and the smallest, keeping density·n."""
    if density >= 1:
        return tau
    n = tau.numel()
    keep = int(density * n)
    n_top = int(gamma * n)
    n_bot = n - keep - n_top
    if n_bot < 0:
        n_top, n_bot = n_top + n_bot, 0
    order = torch.sort(tau.abs().reshape(-1), descending=False, stable=True).indices
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[n_bot : n - n_top]] = True
    masked = tau * mask.view(tau.shape)
    return rescale_l1(tau, masked) if rescale else masked


def sparsify_dare(
    tau: Tensor, density: float, generator: torch.Generator, rescale: bool = True, rescale_mode: str = "l1"
) -> Tensor:
    """DARE: keep each entry with probability `density`; rescale the survivors (1/p in the paper, L1 in mergekit)."""
    if density >= 1:
        return tau
    keep = torch.rand(tau.shape, generator=generator, dtype=torch.float32) < density
    masked = tau * keep
    if not rescale:
        return masked
    if rescale_mode == "inverse":
        return masked / density
    return rescale_l1(tau, masked)


def della_keep_probs(tau: Tensor, density: float, epsilon: float) -> Tensor:
    """DELLA MAGPRUNE keep probabilities: per row, linear in the magnitude rank from density−ε to density+ε."""
    rows = tau.reshape(1, -1) if tau.dim() <= 1 else tau.reshape(tau.shape[0], -1)
    n = rows.shape[1]
    ranks = torch.argsort(torch.argsort(rows.abs(), dim=1, stable=True), dim=1).to(torch.float32)  # 0 = smallest
    span = ranks / max(n - 1, 1)
    return ((density - epsilon) + 2 * epsilon * span).view(tau.shape)


def sparsify_della(
    tau: Tensor,
    density: float,
    epsilon: float,
    generator: torch.Generator,
    rescale: bool = True,
    rescale_mode: str = "l1",
) -> Tensor:
    if density >= 1:
        return tau
    if density - epsilon <= 0 or density + epsilon >= 1:
        raise ValueError(f"della needs 0 < density-epsilon and density+epsilon < 1 (density {density}, epsilon {epsilon})")
    probs = della_keep_probs(tau, density, epsilon)
    keep = torch.rand(tau.shape, generator=generator, dtype=torch.float32) < probs
    masked = tau * keep
    if not rescale:
        return masked
    if rescale_mode == "inverse":
        return torch.where(keep, tau / probs, torch.zeros_like(tau))
    return rescale_l1(tau, masked)


# ---------------------------------------------------------------- combiners


def linear(models: Sequence[Tensor], weights: Sequence[float], normalize: bool = True) -> Tensor:
    """θ = Σ w_i θ_i (/ Σ w_i when normalize)."""
    stacked = torch.stack(list(models), dim=0)
    w = _weights(weights, stacked)
    out = (w * stacked).sum(dim=0)
    if normalize:
        out = out / w.sum(dim=0)
    return out


def sign_consensus_mask(weighted: Tensor, int8_mask: bool = False) -> Tensor:
    """TIES elect: the sign of Σ w_i τ_i (>= 0 counts as +); entries agreeing with it (zeros never agree)."""
    dtype = torch.int8 if int8_mask else weighted.dtype
    majority = (weighted.sum(dim=0) >= 0).to(dtype) * 2 - 1
    return weighted.sign().to(dtype) == majority


def combine_task_vectors(
    base: Tensor,
    taus: Sequence[Tensor],
    weights: Sequence[float],
    *,
    consensus: bool,
    normalize: bool,
    lam: float = 1.0,
    int8_mask: bool = False,
) -> Tensor:
    """θ0 + λ · Σ w_i τ_i [· mask_i] / (Σ w_i [· mask_i] when normalize)."""
    deltas = torch.stack(list(taus), dim=0)
    w = _weights(weights, deltas)
    weighted = deltas * w
    if consensus:
        mask = sign_consensus_mask(weighted, int8_mask)
        mixed = (weighted * mask).sum(dim=0)
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    else:
        mixed = weighted.sum(dim=0)
        divisor = w.sum(dim=0)
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed = mixed / divisor
    if lam != 1:
        mixed = mixed * lam
    return base + mixed


def slerp_coefficients(dot: float, t: float, dot_threshold: float = 0.9995) -> tuple[float, float]:
    """(s0, s1) with θ = s0·θ0 + s1·θ1; falls back to lerp when the directions are nearly colinear."""
    if abs(dot) > dot_threshold:
        return 1 - t, t
    omega = math.acos(max(-1.0, min(1.0, dot)))
    sin_omega = math.sin(omega)
    return math.sin((1 - t) * omega) / sin_omega, math.sin(t * omega) / sin_omega


def _unit_dot(a: Tensor, b: Tensor, eps: float = 1e-8) -> float:
    na = float(a.double().norm())
    nb = float(b.double().norm())
    dot = float((a.double() * b.double()).sum())
    return dot / ((na if na > eps else 1.0) * (nb if nb > eps else 1.0))


def slerp(base: Tensor, other: Tensor, t: float) -> Tensor:
    """Spherical interpolation of the flattened tensors: base at t=0, other at t=1."""
    s0, s1 = slerp_coefficients(_unit_dot(base, other), t)
    return s0 * base + s1 * other


def model_stock(base: Tensor, models: Sequence[Tensor], filter_wise: bool = False) -> Tensor:
    """Model Stock: t = N·cosθ / (1 + (N−1)·cosθ) from the mean pairwise cosine of the task vectors;
    θ = t·mean(θ_i) + (1−t)·θ0."""
    n = len(models)
    if n < 2:
        raise ValueError("model_stock needs at least two models besides the base")
    shape = base.shape
    if filter_wise and base.dim() >= 1:
        flat = lambda x: x.reshape(1, -1) if x.dim() == 1 else x.reshape(x.shape[0], -1)  # noqa: E731
    else:
        flat = lambda x: x.reshape(1, -1)  # noqa: E731
    b = flat(base)
    taus = [flat(m) - b for m in models]
    cos = []
    for i in range(n):
        for j in range(i + 1, n):
            norm = taus[i].norm(dim=-1) * taus[j].norm(dim=-1)
            cos.append(((taus[i] * taus[j]).sum(dim=-1) / norm.clamp(min=1e-6)).clamp(-1, 1))
    c = torch.stack(cos).mean(dim=0).unsqueeze(-1)
    t = (n * c) / (1 + (n - 1) * c)
    avg = sum(flat(m) for m in models) / n
    return (t * avg + (1 - t) * b).reshape(shape)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class MethodSpec:
    """What a method needs. `model_params`: per-model parameters with defaults (None = required);
    `options`: method-level parameters with defaults (None = required)."""

    name: str
    needs_base: bool
    model_params: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    sparsifier: str | None = None  # magnitude | random | della | breadcrumbs
    consensus: bool = False
    min_models: int = 1  # models other than the base
    max_models: int | None = None
    random: bool = False
    description: str = ""


_GTA_OPTIONS = {"int8_mask": False, "lambda": 1.0, "tie_break": "index"}


def _gta(name, sparsifier, consensus, normalize, rescale, extra_params=None, description=""):
    params = {"weight": None, "density": 1.0, **(extra_params or {})}
    return MethodSpec(
        name=name,
        needs_base=True,
        model_params=params,
        options={**_GTA_OPTIONS, "normalize": normalize, "rescale": rescale, "rescale_mode": "l1"},
        sparsifier=sparsifier,
        consensus=consensus,
        random=sparsifier in ("random", "della"),
        description=description,
    )


METHODS: dict[str, MethodSpec] = {
    "linear": MethodSpec(
        "linear", needs_base=False, model_params={"weight": None}, options={"normalize": True},
        description="weighted average of the models",
    ),
    "slerp": MethodSpec(
        "slerp", needs_base=True, options={"t": None}, min_models=1, max_models=1,
        description="spherical interpolation between the base (t=0) and one model (t=1)",
    ),
    "model_stock": MethodSpec(
        "model_stock", needs_base=True, options={"filter_wise": False}, min_models=2,
        description="Model Stock: interpolate the models' mean toward the base by their task-vector angle",
    ),
    "task_arithmetic": _gta("task_arithmetic", None, False, False, False, description="θ0 + λ Σ w_i τ_i"),
    "ties": _gta("ties", "magnitude", True, True, False, description="trim by magnitude, elect sign, disjoint mean"),
    "dare_linear": _gta("dare_linear", "random", False, False, True, description="random drop + rescale, summed"),
    "dare_ties": _gta("dare_ties", "random", True, False, True, description="random drop + rescale, TIES sign election"),
    "breadcrumbs": _gta(
        "breadcrumbs", "breadcrumbs", False, False, False, {"gamma": 0.01},
        description="drop the largest and smallest task-vector entries",
    ),
    "breadcrumbs_ties": _gta(
        "breadcrumbs_ties", "breadcrumbs", True, False, False, {"gamma": 0.01},
        description="breadcrumbs + TIES sign election",
    ),
    "della": _gta("della", "della", True, True, True, {"epsilon": 0.15}, description="magnitude-ranked random drop + TIES"),
    "della_linear": _gta("della_linear", "della", False, False, True, {"epsilon": 0.15}, description="DELLA without sign election"),
}


def sparsify(spec: MethodSpec, tau: Tensor, params: dict, options: dict, generator_factory: Callable[[], torch.Generator]) -> Tensor:
    density = float(params.get("density", 1.0))
    rescale = bool(options.get("rescale", False))
    mode = options.get("rescale_mode", "l1")
    if spec.sparsifier is None or density >= 1:
        return tau
    if spec.sparsifier == "magnitude":
        return sparsify_magnitude(tau, density, rescale, str(options.get("tie_break", "index")))
    if spec.sparsifier == "breadcrumbs":
        return sparsify_breadcrumbs(tau, density, float(params.get("gamma", 0.01)), rescale)
    if spec.sparsifier == "random":
        return sparsify_dare(tau, density, generator_factory(), rescale, mode)
    if spec.sparsifier == "della":
        return sparsify_della(tau, density, float(params.get("epsilon", 0.15)), generator_factory(), rescale, mode)
    raise ValueError(f"unknown sparsifier {spec.sparsifier}")


def merge_tensor(
    spec: MethodSpec,
    base: Tensor | None,
    models: Sequence[Tensor],
    params: Sequence[dict],
    options: dict,
    *,
    seed: int = 0,
    tensor_name: str = "",
) -> Tensor:
    """The whole-tensor reference path: one output tensor from float32 inputs. `models` excludes the base."""
    if spec.name == "linear":
        return linear(models, [p["weight"] for p in params], bool(options.get("normalize", True)))
    if spec.name == "slerp":
        return slerp(base, models[0], float(options["t"]))
    if spec.name == "model_stock":
        return model_stock(base, models, bool(options.get("filter_wise", False)))
    taus = []
    for i, (m, p) in enumerate(zip(models, params)):
        tau = m - base
        taus.append(sparsify(spec, tau, p, options, lambda i=i: generator_for(seed, tensor_name, i)))
    return combine_task_vectors(
        base,
        taus,
        [p["weight"] for p in params],
        consensus=spec.consensus,
        normalize=bool(options.get("normalize")),
        lam=float(options.get("lambda", 1.0)),
        int8_mask=bool(options.get("int8_mask", False)),
    )
