"""Every extraction rule (seahelm.md §4) with its edge cases, and reasoning removal."""

from sealion.evaluate.extraction import extract_choice, extract_text, gold_labels, normalize_answer
from sealion.evaluate.reasoning import split_reasoning

LABELS = ["Positif", "Negatif", "Netral"]


def test_choice_tag_and_bold():
    assert extract_choice("Jawaban: Positif", "Jawaban:", LABELS) == "Positif"
    assert extract_choice("Jawaban: **Negatif**", "Jawaban:", LABELS) == "Negatif"
    assert extract_choice("Baik.\nJawaban:   * Netral *\nkarena ...", "Jawaban:", LABELS) == "Netral"


def test_choice_case_insensitive_and_first_match():
    assert extract_choice("jawaban: positif", "Jawaban:", LABELS) == "Positif"
    assert extract_choice("Jawaban: A\nJawaban: B", "Jawaban:", ["A", "B"]) == "A"
    # the (...)+ group keeps its last repetition
    assert extract_choice("Jawaban: AB", "Jawaban:", ["A", "B"]) == "B"


def test_choice_bare_label_fallback():
    assert extract_choice("b.", "Jawaban:", ["A", "B"]) == "B"
    assert extract_choice("  Negatif!  ", "Jawaban:", LABELS) == "Negatif"


def test_choice_missing_tag_is_null():
    assert extract_choice("Saya kira sentimennya positif", "Jawaban:", LABELS) is None
    assert extract_choice("", "Jawaban:", LABELS) is None
    assert extract_choice("Jawaban: Mungkin", "Jawaban:", LABELS) is None


def test_choice_native_scripts_and_multiword_labels():
    assert extract_choice("အဖြေ- ခ", "အဖြေ-", ["က", "ခ", "ဂ", "ဃ"]) == "ခ"
    assert extract_choice("Câu trả lời: Công kích", "Câu trả lời:", ["Sạch", "Công kích", "Thù ghét"]) == "Công kích"
    assert extract_choice("คำตอบ: แง่ลบ", "คำตอบ:", ["แง่บวก", "แง่ลบ", "เฉยๆ"]) == "แง่ลบ"


def test_lindsea_extraction_as_seahelm():
    """The issue's three examples, with SEA-HELM's outputs (MinimalPairsMetric / PragmaticReasoningMetric)."""
    # a bare lower-case label: no tag -> whole response -> lower-cased lookup -> B (sealion used to say null)
    assert extract_choice("b", "Jawaban:", ["A", "B"], lindsea=True) == "B"
    # the first tag is followed by no label: the (labels)* group is empty -> whole response -> null (not B)
    assert extract_choice("Jawaban: Kalimat B lebih baik.\nJawaban: B", "Jawaban:", ["A", "B"], lindsea=True) is None
    # Tamil pragmatic-single: the gold set has two labels, so the repetition stops after பொய்
    golds = gold_labels(["பொய்", "உண்மை", "பொய்"], ["உண்மை", "பொய்", "ஆம்", "இல்லை"])
    assert golds == ["உண்மை", "பொய்"]
    assert extract_choice("பதில்: பொய்ஆம்", "பதில்:", golds, lindsea=True) == "பொய்"
    # with all four labels in the set the last repetition (ஆம்) would win
    assert extract_choice("பதில்: பொய்ஆம்", "பதில்:", ["உண்மை", "பொய்", "ஆம்", "இல்லை"], lindsea=True) == "ஆம்"


def test_lindsea_tag_search_is_case_sensitive():
    labels = ["Benar", "Salah"]
    assert extract_choice("Jawaban: Benar", "Jawaban:", labels, lindsea=True) == "Benar"
    assert extract_choice("Jawaban: **Salah**", "Jawaban:", labels, lindsea=True) == "Salah"
    assert extract_choice("Jawaban: benar", "Jawaban:", labels, lindsea=True) is None  # empty group -> whole text
    assert extract_choice("benar.", "Jawaban:", labels, lindsea=True) == "Benar"
    assert extract_choice("Jawaban: benar", "Jawaban:", labels) == "Benar"  # the general rule ignores case
    # the general rule's (labels)+ finds a later tag; LINDSEA's stops at the first
    assert extract_choice("Jawaban: Kalimat B.\nJawaban: B", "Jawaban:", ["A", "B"]) == "B"


def test_free_text_first_line_after_tag():
    assert extract_text("Terjemahan: Saya makan nasi.\nCatatan: ...", "Terjemahan:") == "Saya makan nasi."
    assert extract_text("Terjemahan:\n```\nSaya makan nasi.\n```", "Terjemahan:") == "Saya makan nasi."
    assert extract_text("Bản tóm tắt: **Một câu.**", "Bản tóm tắt:") == "Một câu.**"


def test_free_text_multiline_without_tag_keeps_everything():
    assert extract_text("Line one.\nLine two.", "Rangkuman:") == "Line one.\nLine two."
    assert extract_text("   ", "Rangkuman:") is None
    assert extract_text("Rangkuman:", "Rangkuman:") is None


def test_normalize_answer():
    assert normalize_answer("  **B.**\n") == "b"  # ASCII punctuation (incl. *) stripped at both ends
    assert normalize_answer("B.") == "b"
    assert normalize_answer("Công   kích") == "công kích"


def test_thinking_before_the_tag_is_removed():
    raw = "<|channel>thought\nMaybe Jawaban: A?<channel|>Jawaban: B"
    answer, reasoning = split_reasoning(raw)
    assert answer == "Jawaban: B" and reasoning == "Maybe Jawaban: A?"
    assert extract_choice(answer, "Jawaban:", ["A", "B"]) == "B"
    assert split_reasoning("<think>hmm</think>\nJawaban: A")[0] == "Jawaban: A"
    # the prompt opened the block (thinking prefill): only the close marker is generated
    assert split_reasoning("plan...\n<channel|>Jawaban: A<turn|>") == ("Jawaban: A", "plan...")


def test_truncated_thinking_counts_as_empty():
    answer, reasoning = split_reasoning("<|channel>thought\nLet me think. Jawaban: A")
    assert answer == "" and reasoning.startswith("Let me think")
    assert extract_choice(answer, "Jawaban:", ["A", "B"]) is None


def test_no_reasoning_passthrough():
    assert split_reasoning("Jawaban: A<end_of_turn>") == ("Jawaban: A", None)
