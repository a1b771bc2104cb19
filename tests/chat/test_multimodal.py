"""Images, audio and video -> Gemma 4 model inputs, checked on the tiny multimodal model (random weights: the
checks are placeholders, soft-token counts and shapes, and that the real towers accept the inputs)."""

from __future__ import annotations

import base64
import dataclasses
import io
import wave

import numpy as np
import pytest
import torch

from sealion.chat.multimodal import MediaError, load_audio, prepare_inputs, soft_token_budget

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def tiny_mm(tiny_mm_dir):
    from transformers import Gemma4AudioFeatureExtractor

    from sealion.models import load

    loaded = load(str(tiny_mm_dir))
    # The tiny audio tower's subsampling projection expects as many mel bins as its first conv has channels
    # (real E2B: 128 and 128); give the feature extractor the tiny model's count so the real tower runs.
    mel = loaded.model.config.audio_config.subsampling_conv_channels[0]
    processor = loaded.processor
    if getattr(processor.feature_extractor, "feature_size", mel) != mel:
        fe = Gemma4AudioFeatureExtractor(feature_size=mel)
        processor = dataclasses.replace(processor, feature_extractor=fe) if dataclasses.is_dataclass(processor) \
            else processor
        if not dataclasses.is_dataclass(loaded.processor):
            processor.feature_extractor = fe
    return loaded, processor


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return PIL.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def _png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _wav_bytes(seconds=1.0, rate=8000, channels=1, width=2) -> bytes:
    n = int(seconds * rate)
    tone = np.sin(np.arange(n) * 2 * np.pi * 440 / rate) * 0.3
    samples = np.repeat(tone[:, None], channels, axis=1)
    ints = (samples * (2 ** (8 * width - 1) - 1)).astype({2: "<i2", 4: "<i4"}[width])
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(ints.tobytes())
    return buf.getvalue()


def _span_lengths(ids, tok, open_tok, soft_tok, close_tok):
    """Lengths of each open ... close span of soft tokens in a 1-D id list."""
    o, s, c = (tok.convert_tokens_to_ids(t) for t in (open_tok, soft_tok, close_tok))
    spans, current = [], None
    for t in ids:
        if t == o:
            current = 0
        elif t == s and current is not None:
            current += 1
        elif t == c and current is not None:
            spans.append(current)
            current = None
    return spans


def test_images_any_aspect_ratio(tiny_mm, tmp_path):
    loaded, processor = tiny_mm
    tok = loaded.tokenizer
    sizes = [(64, 64), (30, 200), (200, 30), (5, 400), (333, 17)]
    path = tmp_path / "tall.png"
    _image(*sizes[2]).save(path)
    parts = [
        {"type": "image", "image": _image(*sizes[0])},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
            _png_bytes(_image(*sizes[1]))).decode()}},
        {"type": "image", "path": str(path)},
        {"type": "image", "image": _png_bytes(_image(*sizes[3]))},
        {"type": "image", "url": np.asarray(_image(*sizes[4]))},
        {"type": "text", "text": "Compare these."},
    ]
    inputs = prepare_inputs(processor, tok, [{"role": "user", "content": parts}])
    ip = processor.image_processor
    expected = [soft_token_budget(h, w, patch_size=ip.patch_size, pooling=ip.pooling_kernel_size,
                                  max_soft_tokens=ip.max_soft_tokens) for h, w in sizes]
    ids = inputs["input_ids"][0].tolist()
    assert _span_lengths(ids, tok, "<|image>", "<|image|>", "<image|>") == expected
    assert all(0 < n <= ip.max_soft_tokens for n in expected) and len(set(expected)) > 1
    max_patches = ip.max_soft_tokens * ip.pooling_kernel_size ** 2
    assert inputs["pixel_values"].shape == (5, max_patches, 3 * ip.patch_size ** 2)
    assert inputs["image_position_ids"].shape == (5, max_patches, 2)
    real = (inputs["image_position_ids"] >= 0).all(-1).sum(-1).tolist()
    assert real == [n * ip.pooling_kernel_size ** 2 for n in expected]  # padding rows are (-1, -1)
    assert int((inputs["mm_token_type_ids"] == 1).sum()) == sum(expected)
    text = tok.decode(ids)
    assert text.startswith("<bos><|turn>user\n<|image>") and text.endswith("Compare these.<turn|>\n<|turn>model\n")
    with torch.no_grad():  # the real vision tower produces exactly as many features as there are soft tokens
        out = loaded.model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape


def test_audio_and_video(tiny_mm, tmp_path):
    loaded, processor = tiny_mm
    tok = loaded.tokenizer
    wav = tmp_path / "clip.wav"
    wav.write_bytes(_wav_bytes(seconds=2.0, rate=8000, channels=2))
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for k in range(3):
        _image(40, 60, seed=k).save(frames_dir / f"f{k:03d}.png")
    messages = [
        {"role": "system", "content": "Listen and watch."},
        {"role": "user", "content": [
            {"type": "audio", "path": str(wav)},
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(_wav_bytes(1.0, 16000)).decode(),
                                                    "format": "wav"}},
            {"type": "video", "video": str(frames_dir), "fps": 0.5},
            {"type": "text", "text": "What happens?"}]},
    ]
    inputs = prepare_inputs(processor, tok, messages, enable_thinking=True)
    ids = inputs["input_ids"][0].tolist()
    audio_spans = _span_lengths(ids, tok, "<|audio>", "<|audio|>", "<audio|>")
    # 40 ms per soft token: 2 s -> ~50, 1 s -> ~25
    assert len(audio_spans) == 2 and abs(audio_spans[0] - 50) <= 2 and abs(audio_spans[1] - 25) <= 2
    assert inputs["input_features"].shape[0] == 2 and inputs["input_features_mask"].shape[0] == 2
    assert int((inputs["mm_token_type_ids"] == 3).sum()) == sum(audio_spans)
    video_spans = _span_lengths(ids, tok, "<|image>", "<|video|>", "<image|>")
    assert len(video_spans) == 3 and len(set(video_spans)) == 1
    assert inputs["pixel_values_videos"].shape[0] == 3 and inputs["num_frames_per_video"].tolist() == [3]
    text = tok.decode(ids)
    assert "00:00 <|image>" in text and " 00:02 <|image>" in text and " 00:04 <|image>" in text
    assert text.startswith("<bos><|turn>system\n<|think|>\nListen and watch.<turn|>")
    with torch.no_grad():  # real audio and vision towers accept the inputs and the counts line up
        out = loaded.model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape


def test_media_errors_name_the_part(tiny_mm, tmp_path):
    loaded, processor = tiny_mm
    with pytest.raises(MediaError, match=r"messages\[1\]\.content\[0\]: cannot load image"):
        prepare_inputs(processor, loaded.tokenizer, [{"role": "system", "content": "s"}, {"role": "user", "content": [
            {"type": "image", "path": str(tmp_path / "missing.png")}]}])
    (tmp_path / "x.mp3").write_bytes(b"ID3not a wav")
    from sealion.chat.multimodal import compressed_audio_supported

    # without soundfile the format is named; with it, these bytes are no decodable mp3
    problem = "cannot decode mp3" if compressed_audio_supported() else "mp3 audio cannot be decoded here"
    with pytest.raises(MediaError, match=problem) as info:
        prepare_inputs(processor, loaded.tokenizer, [{"role": "user", "content": [
            {"type": "audio", "path": str(tmp_path / "x.mp3")}]}])
    assert info.value.param == "messages[0].content[0]"


def test_load_audio_resamples_and_mixes():
    samples = load_audio(_wav_bytes(seconds=0.5, rate=22050, channels=2, width=4))
    assert samples.dtype == np.float32 and abs(len(samples) - 8000) <= 1 and 0.2 < np.abs(samples).max() < 0.35
    assert len(load_audio(np.zeros(4410), sampling_rate=44100)) == 1600


def test_engine_chat_with_image(tiny_mm):
    """The lead's LocalEngine routes media messages through prepare_inputs."""
    from sealion.engine import ChatRequest, LocalEngine, SamplingParams

    loaded, _ = tiny_mm
    engine = LocalEngine(loaded)
    [completion] = engine.chat([ChatRequest(messages=[{"role": "user", "content": [
        {"type": "image", "image": _image(48, 32)}, {"type": "text", "text": "What is this?"}]}],
        params=SamplingParams(max_new_tokens=3, temperature=0))])
    assert completion.prompt_tokens > 10 and 1 <= completion.completion_tokens <= 3


def test_animated_gif_video_sampled(tiny_mm, tmp_path):
    loaded, processor = tiny_mm
    gif = tmp_path / "clip.gif"
    frames = [_image(24, 40, seed=k) for k in range(5)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=500, loop=0)
    inputs = prepare_inputs(processor, loaded.tokenizer, [{"role": "user", "content": [
        {"type": "video", "video": str(gif)}, {"type": "text", "text": "What moves?"}]}], max_video_frames=3)
    text = loaded.tokenizer.decode(inputs["input_ids"][0])
    assert inputs["num_frames_per_video"].tolist() == [3] and inputs["pixel_values_videos"].shape[0] == 3
    assert [text.count(f"{t} <|image>") for t in ("00:00", "00:01", "00:02")] == [1, 1, 1]
    with pytest.raises(MediaError, match="not decoded here"):
        (tmp_path / "v.mp4").write_bytes(b"\0\0\0 ftypisom")
        prepare_inputs(processor, loaded.tokenizer, [{"role": "user", "content": [
            {"type": "video", "video": str(tmp_path / "v.mp4")}]}])
