"""The one sampling-parameter rule: OpenAI ranges, the field named in the error."""

import pytest

from sealion.engine.params import SamplingParamError, check_sampling, top_k_or_none
from sealion.engine.types import SamplingParams


@pytest.mark.parametrize("kw, field", [
    ({"temperature": -1}, "temperature"), ({"temperature": 2.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"),
    ({"top_p": -0.5}, "top_p"), ({"top_k": -2}, "top_k"), ({"max_new_tokens": 0}, "max_tokens"),
    ({"seed": 1.5}, "seed"), ({"stop": [""]}, "stop"), ({"stop_token_ids": [-1]}, "stop_token_ids"),
])
def test_out_of_range_names_the_field(kw, field):
    with pytest.raises(SamplingParamError) as e:
        SamplingParams(**kw).check()
    assert e.value.field == field and field in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kw", [
    {}, {"temperature": 0}, {"temperature": 2}, {"top_p": 1}, {"top_p": 1e-6}, {"top_k": -1}, {"top_k": 0},
    {"top_k": 40}, {"seed": 0}, {"stop": ["\n\n"]},
])
def test_in_range_is_accepted(kw):
    SamplingParams(**kw).check()


def test_context_limit():
    with pytest.raises(SamplingParamError, match="context of 100"):
        check_sampling(SamplingParams(max_new_tokens=20), context_length=100, prompt_tokens=90)
    check_sampling(SamplingParams(max_new_tokens=10), context_length=100, prompt_tokens=90)


def test_top_k_off_values():
    assert top_k_or_none(-1) is None and top_k_or_none(0) is None and top_k_or_none(5) == 5
