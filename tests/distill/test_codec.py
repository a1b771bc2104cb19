import numpy as np
import pytest

from sealion.distill.codec import CodecConfig, decode, encode, fidelity_kl, tail_logmass


def _rows(n=200, v=262144, k=32, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, 2048)) * 3
    vocab = rng.choice(v, 2048, replace=False)  # a shared pool, like frequent tokens across positions
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    order = np.argsort(-logp, axis=1)[:, :k]
    return vocab[order], np.take_along_axis(logp, order, 1), logp, order


@pytest.mark.parametrize("compressor", ["lzma", "zlib", "none"])
def test_roundtrip_exact_ids_and_bounded_logprob_error(compressor):
    ids, lps, _, _ = _rows()
    tail = tail_logmass(lps)
    cfg = CodecConfig(step=1 / 64, compressor=compressor)
    ids2, lps2, tail2 = decode(encode(ids, lps, tail, cfg), cfg)
    assert np.array_equal(ids2, ids)
    assert np.abs(lps2 - lps).max() <= cfg.step / 2 + 1e-6
    assert np.abs(tail2 - tail).max() <= cfg.step / 2 + 1e-6
    assert (np.diff(lps2, axis=1) <= 0).all()  # order survives


def test_compressed_is_smaller_than_raw_18bit_ids():
    ids, lps, _, _ = _rows(n=500, k=64)
    blob = encode(ids, lps, tail_logmass(lps))
    assert len(blob) / 500 < 64 * 18 / 8  # beats packed 18-bit ids alone (before any logprobs)


def test_tail_none_and_empty():
    ids = np.array([[5, 9]])
    lps = np.log(np.array([[0.5, 0.5]]))
    tail = tail_logmass(lps)
    assert np.isneginf(tail[0])
    _, _, tail2 = decode(encode(ids, lps, tail))
    assert np.isneginf(tail2[0])
    e_ids, e_lps, e_tail = decode(encode(np.zeros((0, 4), int), np.zeros((0, 4)), np.zeros(0)))
    assert e_ids.shape == (0, 4) and e_tail.shape == (0,)


def test_fidelity_kl_zero_for_exact_and_grows_with_step():
    ids, lps, dense, order = _rows(n=100, v=4096, k=16)
    dense_by_vocab = dense  # indices are positions in the pool; use pool positions as ids for this check
    exact = fidelity_kl(dense_by_vocab, order, lps, tail_logmass(lps))
    assert np.abs(exact).max() < 1e-9
    kls = []
    for step in [1 / 128, 1 / 16, 1 / 2]:
        cfg = CodecConfig(step=step)
        _, l2, t2 = decode(encode(order, lps, tail_logmass(lps), cfg), cfg)
        kls.append(fidelity_kl(dense_by_vocab, order, l2, t2).mean())
    assert kls[0] < kls[1] < kls[2]
    assert kls[0] < 1e-4


def test_bad_config():
    with pytest.raises(ValueError, match="step"):
        CodecConfig(step=0)
    with pytest.raises(ValueError, match="compressor"):
        CodecConfig(compressor="brotli")
    with pytest.raises(ValueError, match="magic"):
        decode(b"XXXX" + bytes(20))
