"""MetricX-24 as a pluggable metric: a tiny random mT5 regression checkpoint (real structure) stands in for
google/metricx-24 (not downloadable here); the translation kind switches to it when --metricx is given."""

import pytest

from sealion.evaluate.metrics.metricx import SCORE_TOKEN_ID, metricx_input, metricx_scores
from sealion.evaluate.tasks import Item, ScoreContext, TurnOutput, all_specs, get_kind


@pytest.fixture(scope="module")
def tiny_metricx(tiny_text_dir, tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, MT5Config, MT5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(str(tiny_text_dir))
    cfg = MT5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1,
                    num_heads=2, decoder_start_token_id=0, pad_token_id=tok.pad_token_id or 0)
    assert cfg.vocab_size > SCORE_TOKEN_ID
    torch.manual_seed(0)
    model = MT5ForConditionalGeneration(cfg)
    with torch.no_grad():  # put the score logit in MetricX's range
        model.lm_head.weight[SCORE_TOKEN_ID].normal_(0, 5.0)
    out = tmp_path_factory.mktemp("metricx")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_metricx_input_format():
    assert metricx_input("Hi.", "Halo.", "Hai.") == "source: Hi. candidate: Halo. reference: Hai."
    assert metricx_input("Hi.", None, "Hai.") == "source: Hi. candidate:  reference: Hai."


def test_metricx_scores_range_and_determinism(tiny_metricx):
    a = metricx_scores(str(tiny_metricx), ["I like fruit.", "Nice day."], ["ฉันชอบผลไม้", None], ["ฉันชอบกินผลไม้", "วันนี้อากาศดี"])
    b = metricx_scores(str(tiny_metricx), ["I like fruit."], ["ฉันชอบผลไม้"], ["ฉันชอบกินผลไม้"], batch_size=1)
    assert len(a) == 2 and all(0.0 <= x <= 25.0 for x in a)
    assert a[0] == pytest.approx(b[0], abs=1e-4)  # padding in a batch does not change a score


def test_translation_kind_uses_metricx_when_given(tiny_metricx, tmp_path):
    spec = all_specs()["translation-en-xx"]
    kind = get_kind(spec.kind)
    items = [Item("0", [{"text": "I like fruit."}], "ฉันชอบกินผลไม้"), Item("1", [{"text": "Nice."}], "วันนี้อากาศดี")]
    outs = [[TurnOutput(text=t, answer=t)] for t in ("คำแปล: ฉันชอบผลไม้", "คำแปล: อากาศดี")]
    ctx = ScoreContext(run=0, seed=1, cache_dir=tmp_path, options={"metricx": str(tiny_metricx)})
    scores = kind.score(spec, "th", items, outs, ctx)
    raw = [s.details["metricx"] for s in scores]
    assert [s.score for s in scores] == pytest.approx([(25 - r) / 25 for r in raw])
    m = kind.task_metrics(spec, "th", items, scores)
    assert m["metric_used"] == "metricx-24" and m["score"] == pytest.approx(100 * sum(s.score for s in scores) / 2)
    assert "chrf++" in m
