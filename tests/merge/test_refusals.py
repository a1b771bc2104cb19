"""Each refusal: a clear ConfigError naming the problem, before any output exists."""

from __future__ import annotations

import pytest

from .merge_testutil import llama_like, write_yaml
from sealion.errors import ConfigError
from sealion.merge import merge


def _merge(tmp_path, cfg):
    path = write_yaml(tmp_path / "m.yaml", cfg)
    return merge(path, tmp_path / "out", progress=False)


def _pair(tmp_path, **kw_b):
    a = llama_like(tmp_path / "a", seed=0)
    b = llama_like(tmp_path / "b", seed=1, **kw_b)
    return a, b


def _linear(a, b, wa=0.5, wb=0.5, **params):
    return {"merge_method": "linear", "models": [
        {"model": str(a), "parameters": {"weight": wa}}, {"model": str(b), "parameters": {"weight": wb}}],
        **({"parameters": params} if params else {})}


def test_llama_like_merge_works(tmp_path):
    a, b = _pair(tmp_path)
    s = merge(write_yaml(tmp_path / "ok.yaml", _linear(a, b)), tmp_path / "ok", progress=False)
    assert s.family == "generic" and len(s.merged) == 8


def test_refuses_different_architectures(tmp_path):
    a, b = _pair(tmp_path, model_type="mistral")
    with pytest.raises(ConfigError, match="different architectures"):
        _merge(tmp_path, _linear(a, b))
    assert not (tmp_path / "out").exists()


def test_refuses_shape_mismatch(tmp_path):
    a, b = _pair(tmp_path, inter=24)
    with pytest.raises(ConfigError, match=r"mlp.up_proj.weight has shape \[24, 8\]"):
        _merge(tmp_path, _linear(a, b))


def test_shape_mismatch_allowed_by_explicit_rule(tmp_path):
    a, b = _pair(tmp_path, inter=24)
    cfg = _linear(a, b)
    cfg["rules"] = [{"filter": "mlp.up_proj", "action": "base"}]
    s = merge(write_yaml(tmp_path / "r.yaml", cfg), tmp_path / "r", progress=False)
    assert len(s.copied) == 2


def test_refuses_vocab_size_mismatch(tmp_path):
    a, b = _pair(tmp_path, vocab=40)
    with pytest.raises(ConfigError, match="vocab sizes differ"):
        _merge(tmp_path, _linear(a, b))


def test_refuses_missing_tensor(tmp_path):
    a, b = _pair(tmp_path, drop=("model.layers.1.self_attn.q_proj.weight",))
    with pytest.raises(ConfigError, match="model.layers.1.self_attn.q_proj.weight is missing"):
        _merge(tmp_path, _linear(a, b))


def test_refuses_missing_method_parameter(tmp_path):
    a, b = _pair(tmp_path)
    cfg = {"merge_method": "ties", "base_model": str(a), "models": [{"model": str(b), "parameters": {"density": 0.5}}]}
    with pytest.raises(ConfigError, match="needs parameter 'weight'"):
        _merge(tmp_path, cfg)
    cfg = {"merge_method": "slerp", "base_model": str(a), "models": [{"model": str(a)}, {"model": str(b)}]}
    with pytest.raises(ConfigError, match="needs parameter 't'"):
        _merge(tmp_path, cfg)
    cfg = {"merge_method": "ties", "models": [{"model": str(b), "parameters": {"weight": 1}}]}
    with pytest.raises(ConfigError, match="needs base_model"):
        _merge(tmp_path, cfg)


def test_refuses_weights_that_do_not_sum_without_normalize(tmp_path):
    a, b = _pair(tmp_path)
    with pytest.raises(ConfigError, match="sum to 0.9, not 1"):
        _merge(tmp_path, _linear(a, b, 0.5, 0.4, normalize=False))
    merge(write_yaml(tmp_path / "n.yaml", _linear(a, b, 0.5, 0.4)), tmp_path / "n", progress=False)  # normalize: ok


def test_refuses_bad_config_fields(tmp_path):
    a, b = _pair(tmp_path)
    with pytest.raises(ConfigError, match="not supported"):
        _merge(tmp_path, {**_linear(a, b), "merge_method": "frankenstein"})
    with pytest.raises(ConfigError, match="unknown key"):
        _merge(tmp_path, {**_linear(a, b), "modles": []})
    with pytest.raises(ConfigError, match="density must be in"):
        _merge(tmp_path, {"merge_method": "ties", "base_model": str(a),
                          "models": [{"model": str(b), "parameters": {"weight": 1, "density": 1.5}}]})
    with pytest.raises(ConfigError, match="exactly 1 model"):
        c = llama_like(tmp_path / "c", seed=2)
        _merge(tmp_path, {"merge_method": "slerp", "base_model": str(a), "parameters": {"t": 0.5},
                          "models": [{"model": str(b)}, {"model": str(c)}]})
    with pytest.raises(ConfigError, match="cannot resolve model"):
        _merge(tmp_path, _linear(a, tmp_path / "nope"))
    with pytest.raises(ConfigError, match="layer stacking"):
        _merge(tmp_path, {"merge_method": "linear", "slices": [
            {"sources": [{"model": str(a), "layer_range": [0, 1], "parameters": {"weight": 1}}]},
            {"sources": [{"model": str(a), "layer_range": [0, 1], "parameters": {"weight": 1}}]}]})


def test_refuses_existing_output_and_bad_yaml(tmp_path):
    a, b = _pair(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists"):
        _merge(tmp_path, _linear(a, b))
    assert (tmp_path / "out" / "x").read_text() == "keep me"
    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: linear\nmodels: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        merge(bad, tmp_path / "o2", progress=False)


def test_cli_prints_one_line_error(tmp_path, capsys):
    from sealion.cli import main

    a, b = _pair(tmp_path, model_type="mistral")
    cfg = write_yaml(tmp_path / "c.yaml", _linear(a, b))
    assert main(["merge", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sealion: error:") and "architectures" in err[0]
    a2 = llama_like(tmp_path / "a2", seed=5)
    ok = write_yaml(tmp_path / "ok.yaml", _linear(a, a2))
    assert main(["merge", str(ok), "--out", str(tmp_path / "o"), "--no-progress", "--json"]) == 0
    assert '"merged": 8' in capsys.readouterr().out
