"""The recipe's merge is checked against the method before any work: model counts and parameters, naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sealion.errors import ConfigError
from sealion.recipe.config import parse_recipe

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "recipes" / "gemma-sea-lion-v4.5-e2b.yaml"


def _plan(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "sealion", "recipe", str(path), "--plan"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_real_recipe_plan_rejects_model_stock_with_one_model(tmp_path):
    data = yaml.safe_load(REAL.read_text())
    data["merge"]["method"] = "model_stock"
    bad = tmp_path / "e2b-model-stock.yaml"
    bad.write_text(yaml.safe_dump(data))
    proc = _plan(bad)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "merge.method: model_stock needs at least 2 fine-tuned models" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr
    data["merge"]["models"] = ["aisingapore/another-e2b-finetune"]  # a second fine-tuned model: valid
    bad.write_text(yaml.safe_dump(data))
    proc = _plan(bad)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("merge, field", [
    ({"method": "slerp", "models": ["a/b"]}, "merge.models"),
    ({"method": "ties", "parameters": {"densty": 0.5}}, "merge.parameters.densty"),
    ({"method": "linear", "parameters": {"t": 0.5}}, "merge.parameters.t"),
    ({"method": "model_stock"}, "merge.method"),
])
def test_bad_merge_names_the_field(merge, field):
    with pytest.raises(ConfigError, match=rf"r\.yaml: {field}: "):
        parse_recipe({"name": "t", "teacher": "demo", "merge": merge}, source="r.yaml")


def test_valid_merges_pass():
    for merge in ({"method": "slerp"}, {"method": "ties", "parameters": {"density": 0.5}},
                  {"method": "model_stock", "models": ["a/b"]}, {"method": "model_stock", "enabled": False}):
        parse_recipe({"name": "t", "teacher": "demo", "merge": merge}, source="r.yaml")


def test_capture_from_served_instances_is_validated_and_passed_on(tmp_path):
    from sealion.distill.capture import CaptureConfig

    with pytest.raises(ConfigError, match=r"r\.yaml: capture\.served: \[1\] 'gpu2:8000' is not an http"):
        parse_recipe({"name": "t", "teacher": "demo", "capture": {"served": ["http://a/v1", "gpu2:8000"]}},
                     source="r.yaml")
    with pytest.raises(ConfigError, match=r"r\.yaml: capture: .*served_weights: 1 weight\(s\) for 2"):
        parse_recipe({"name": "t", "teacher": "demo", "capture": {"served": ["http://a/v1", "http://b/v1"],
                                                                   "served_weights": [1.0]}}, source="r.yaml")
    r = parse_recipe({"name": "t", "teacher": "demo", "capture": {"served": ["http://a/v1", "http://b/v1"]}})
    kw = r.capture.served_kwargs(r.teacher)
    cfg = CaptureConfig(data=["x"], out=str(tmp_path), **kw)
    assert cfg.backend == "served" and cfg.tokenizer == "demo" and cfg.extra_teachers == ["http://b/v1"]
    assert [e.weight for e in cfg._endpoints()] == [0.5, 0.5]
