"""Every SEA-IFEval checker on passing and failing responses in Latin (id/en), Thai and Tamil script."""

from __future__ import annotations

import pytest

from sealion.evaluate.ifeval.checkers import CHECKERS, CheckContext, check, loose_variants, skips, star_blocks

TA_OPTIONS_PROMPT = 'நீ புத்திசாலியா? பின்வருவனவற்றில் ஒன்றைப் பயன்படுத்தவும்: "என் பதில் ஆம்.", "என் பதில் இல்லை.", "என் பதில் இருக்கலாம்."'

# (instruction id, language, kwargs, response, expected strict result)
CASES = [
    # ---- length constraints: `***` separated blocks
    ("length_constraints:number_paragraphs", "id", {"num_paragraphs": 3}, "Satu.\n***\nDua.\n***\nTiga.", True),
    ("length_constraints:number_paragraphs", "id", {"num_paragraphs": 3}, "Satu.\n***\nDua.", False),
    ("length_constraints:number_paragraphs", "th", {"num_paragraphs": 2}, "ย่อหน้าแรก\n***\nย่อหน้าที่สอง", True),
    ("length_constraints:number_paragraphs", "th", {"num_paragraphs": 2}, "ย่อหน้าแรก ย่อหน้าที่สอง", False),
    ("length_constraints:number_paragraphs", "ta", {"num_paragraphs": 2}, "முதல் பத்தி.\n***\nஇரண்டாம் பத்தி.", True),
    ("length_constraints:number_paragraphs", "ta", {"num_paragraphs": 2}, "முதல் பத்தி.\n***\n***\n", False),
    ("length_constraints:number_sentences", "id", {"relation": "less than", "num_sentences": 3}, "Saya makan. *** Dia minum.", True),
    ("length_constraints:number_sentences", "id", {"relation": "at least", "num_sentences": 3}, "Saya makan. *** Dia minum.", False),
    ("length_constraints:number_sentences", "th", {"relation": "at least", "num_sentences": 2}, "ฉันกินข้าว *** เขาดื่มน้ำ", True),
    ("length_constraints:number_sentences", "th", {"relation": "less than", "num_sentences": 2}, "ฉันกินข้าว *** เขาดื่มน้ำ", False),
    ("length_constraints:number_sentences", "ta", {"relation": "less than", "num_sentences": 2}, "நான் சாப்பிட்டேன்.", True),
    ("length_constraints:number_sentences", "ta", {"relation": "at least", "num_sentences": 2}, "நான் சாப்பிட்டேன்.", False),
    ("length_constraints:number_words", "id", {"relation": "at least", "num_words": 4}, "Saya suka makan nasi goreng.", True),
    ("length_constraints:number_words", "id", {"relation": "less than", "num_words": 4}, "Saya suka makan nasi goreng.", False),
    ("length_constraints:number_words", "ta", {"relation": "less than", "num_words": 5}, "இது ஒரு சோதனை", True),
    ("length_constraints:number_words", "ta", {"relation": "at least", "num_words": 5}, "இது ஒரு சோதனை", False),
    ("length_constraints:number_words", "vi", {"relation": "at least", "num_words": 5}, "Tôi thích ăn phở bò.", True),
    ("length_constraints:number_words", "vi", {"relation": "less than", "num_words": 5}, "Tôi thích ăn phở bò.", False),
    # ---- keywords: word boundaries for id/vi/en, substrings for th/ta/tl
    ("keywords:existence", "id", {"keywords": ["ekonom", "bank"]}, "Seorang ekonom bekerja di bank.", True),
    ("keywords:existence", "id", {"keywords": ["ekonom", "bank"]}, "Para ekonomi bekerja di perbankan.", False),
    ("keywords:existence", "th", {"keywords": ["แบงค์", "ทักษิณ"]}, "นักเศรษฐศาสตร์พูดถึงแบงค์ชาติและทักษิณ", True),
    ("keywords:existence", "th", {"keywords": ["แบงค์", "ทักษิณ"]}, "นักเศรษฐศาสตร์พูดถึงธนาคาร", False),
    ("keywords:existence", "ta", {"keywords": ["வங்கி"]}, "அவர் வங்கியில் வேலை செய்கிறார்.", True),
    ("keywords:existence", "ta", {"keywords": ["வங்கி"]}, "அவர் பள்ளியில் வேலை செய்கிறார்.", False),
    ("keywords:forbidden_words", "id", {"forbidden_words": ["suhu", "bumi"]}, "Cuaca hari ini cerah; pembumian listrik aman.", True),
    ("keywords:forbidden_words", "id", {"forbidden_words": ["suhu", "bumi"]}, "Suhu naik di seluruh dunia.", False),
    ("keywords:forbidden_words", "th", {"forbidden_words": ["โลก"]}, "อากาศวันนี้ร้อนมาก", True),
    ("keywords:forbidden_words", "th", {"forbidden_words": ["โลก"]}, "ภาวะโลกร้อนเป็นปัญหา", False),
    ("keywords:forbidden_words", "ta", {"forbidden_words": ["பூமி"]}, "இன்று வானிலை நன்றாக உள்ளது.", True),
    ("keywords:forbidden_words", "ta", {"forbidden_words": ["பூமி"]}, "பூமியின் வெப்பநிலை உயர்கிறது.", False),
    ("keywords:frequency", "id", {"keyword": "pagi", "relation": "less than", "frequency": 2}, "Selamat pagi semua.", True),
    ("keywords:frequency", "id", {"keyword": "pagi", "relation": "less than", "frequency": 2}, "Pagi ini, pagi yang cerah.", False),
    ("keywords:frequency", "th", {"keyword": "เช้า", "relation": "at least", "frequency": 2}, "ตอนเช้าฉันกินอาหารเช้า", True),
    ("keywords:frequency", "th", {"keyword": "เช้า", "relation": "at least", "frequency": 2}, "ตอนเช้าฉันกินข้าว", False),
    ("keywords:frequency", "ta", {"keyword": "காலை", "relation": "at least", "frequency": 2}, "காலை வணக்கம். இன்று காலை மழை.", True),
    ("keywords:frequency", "ta", {"keyword": "காலை", "relation": "at least", "frequency": 2}, "காலை வணக்கம்.", False),
    ("keywords:number_frequency", "id", {"number": "3", "relation": "exactly", "frequency": 2}, "Ada 3 apel dan 3 jeruk, total 30 buah.", True),
    ("keywords:number_frequency", "id", {"number": "3", "relation": "exactly", "frequency": 2}, "Ada 3 apel, 1.3 kg, dan 33 jeruk.", False),
    ("keywords:number_frequency", "th", {"number": "3", "relation": "at least", "frequency": 2}, "มี 3 คน และ 3 แมว", True),
    ("keywords:number_frequency", "th", {"number": "3", "relation": "at least", "frequency": 2}, "มี 3 คน และ 13 แมว", False),
    ("keywords:number_frequency", "ta", {"number": "6", "relation": "exactly", "frequency": 1}, "6 பேர் வந்தனர்.", True),
    ("keywords:number_frequency", "ta", {"number": "6", "relation": "exactly", "frequency": 1}, "6 பேர் 6 நாட்கள்.", False),
    # ---- detectable content
    ("detectable_content:number_placeholders", "id", {"num_placeholders": 2}, "Halo [nama], alamat [alamat].", True),
    ("detectable_content:number_placeholders", "id", {"num_placeholders": 2}, "Halo [nama], alamat [ ].", False),
    ("detectable_content:number_placeholders", "th", {"num_placeholders": 2}, "เรียน [ชื่อ] ที่ [ที่อยู่]", True),
    ("detectable_content:number_placeholders", "th", {"num_placeholders": 2}, "เรียน [ชื่อ]", False),
    ("detectable_content:number_placeholders", "ta", {"num_placeholders": 1}, "அன்புள்ள [பெயர்],", True),
    ("detectable_content:number_placeholders", "ta", {"num_placeholders": 1}, "அன்புள்ள நண்பரே,", False),
    ("detectable_content:postscript", "id", {"postscript_marker": "P.S."}, "Isi surat.\n\nP.S. Jangan lupa.", True),
    ("detectable_content:postscript", "id", {"postscript_marker": "P.S."}, "Isi surat. Jangan lupa.", False),
    ("detectable_content:postscript", "id", {"postscript_marker": "P.P.S."}, "Isi.\nP.S. satu\nPPS dua", False),
    ("detectable_content:postscript", "id", {"postscript_marker": "P.P.S."}, "Isi.\nP.S. satu\nP.P.S. dua", True),
    ("detectable_content:postscript", "th", {"postscript_marker": "ป.ล."}, "เนื้อหาจดหมาย\n\nป.ล. อย่าลืมนะ", True),
    ("detectable_content:postscript", "th", {"postscript_marker": "ป.ล."}, "เนื้อหาจดหมาย\n\nP.S. อย่าลืมนะ", False),
    ("detectable_content:postscript", "ta", {"postscript_marker": "பி.கு."}, "கடிதம்.\n\nபி.கு. மறக்காதே.", True),
    ("detectable_content:postscript", "ta", {"postscript_marker": "பி.கு."}, "கடிதம். மறக்காதே.", False),
    # ---- detectable format
    ("detectable_format:title", "id", {}, "<<Puisi Bulan>>\nIsi puisi.", True),
    ("detectable_format:title", "id", {}, "Puisi Bulan\nIsi puisi.", False),
    ("detectable_format:title", "th", {}, "<<บทกวีดวงจันทร์>>\nเนื้อหา", True),
    ("detectable_format:title", "th", {}, "<< >>\nเนื้อหา", False),
    ("detectable_format:title", "ta", {}, "<<நிலா கவிதை>>\nகவிதை.", True),
    ("detectable_format:title", "ta", {}, "நிலா கவிதை\nகவிதை.", False),
    ("detectable_format:number_bullet_lists", "id", {"num_bullets": 2}, "Daftar:\n* satu\n- dua", True),
    ("detectable_format:number_bullet_lists", "id", {"num_bullets": 2}, "Daftar:\n* satu\n* dua\n* tiga", False),
    ("detectable_format:number_bullet_lists", "th", {"num_bullets": 2}, "* หนึ่ง\n* สอง\n*ตัวหนา*", True),
    ("detectable_format:number_bullet_lists", "th", {"num_bullets": 2}, "* หนึ่ง", False),
    ("detectable_format:number_bullet_lists", "ta", {"num_bullets": 1}, "- ஒன்று", True),
    ("detectable_format:number_bullet_lists", "ta", {"num_bullets": 1}, "1. ஒன்று", False),
    ("detectable_format:number_highlighted_sections", "id", {"num_highlights": 2}, "*penting* dan **sangat penting**", True),
    ("detectable_format:number_highlighted_sections", "id", {"num_highlights": 2}, "*penting* dan ** **", False),
    ("detectable_format:number_highlighted_sections", "th", {"num_highlights": 2}, "*สำคัญ* และ *มาก*", True),
    ("detectable_format:number_highlighted_sections", "th", {"num_highlights": 2}, "*สำคัญ* และ มาก", False),
    ("detectable_format:number_highlighted_sections", "ta", {"num_highlights": 1}, "**முக்கியம்**", True),
    ("detectable_format:number_highlighted_sections", "ta", {"num_highlights": 1}, "முக்கியம்", False),
    ("detectable_format:multiple_sections", "id", {"section_title": "BAGIAN", "num_sections": 2}, "BAGIAN 1\nA\nBAGIAN 2\nB", True),
    ("detectable_format:multiple_sections", "id", {"section_title": "BAGIAN", "num_sections": 2}, "BAGIAN 1\nA\nbagian kedua", False),
    ("detectable_format:multiple_sections", "th", {"section_title": "ส่วน", "num_sections": 2}, "ส่วน 1\nก\nส่วน 2\nข", True),
    ("detectable_format:multiple_sections", "th", {"section_title": "ส่วน", "num_sections": 2}, "ส่วนใหญ่ 1 คน\nส่วน 1\nก", False),
    ("detectable_format:multiple_sections", "ta", {"section_title": "பகுதி", "num_sections": 2}, "பகுதி 1\nஅ\nபகுதி 2\nஆ", True),
    ("detectable_format:multiple_sections", "ta", {"section_title": "பகுதி", "num_sections": 2}, "பகுதி 1\nஅ", False),
    ("detectable_format:json_format", "id", {}, '```json\n{"nama": "Budi"}\n```', True),
    ("detectable_format:json_format", "id", {}, 'Berikut JSON: {"nama": "Budi"}', False),
    ("detectable_format:json_format", "th", {}, '{"ชื่อ": "สมชาย"}', True),
    ("detectable_format:json_format", "th", {}, '{"ชื่อ": สมชาย}', False),
    ("detectable_format:json_format", "ta", {}, '{"பெயர்": "ராமன்"}', True),
    ("detectable_format:json_format", "ta", {}, "பெயர்: ராமன்", False),
    ("detectable_format:constrained_response", "id", {}, "Menurut saya tidak. Jawaban saya adalah tidak.", True),
    ("detectable_format:constrained_response", "id", {}, "My answer is no.", False),
    ("detectable_format:constrained_response", "vi", {}, "Câu trả lời của tôi là có thể", True),
    ("detectable_format:constrained_response", "th", {}, "คำตอบของฉันคือไม่", True),
    ("detectable_format:constrained_response", "th", {}, "ไม่ใช่ครับ", False),
    ("detectable_format:constrained_response", "tl", {}, "Ang sagot ko ay oo.", True),
    ("detectable_format:constrained_response", "ta", {}, "என் பதில் ஆம்.", True),
    ("detectable_format:constrained_response", "ta", {}, "ஆம்.", False),
    # ---- start / end
    ("startend:end_checker", "id", {"end_phrase": "Ada pertanyaan lain?"}, "Jawaban.\nAda pertanyaan lain?", True),
    ("startend:end_checker", "id", {"end_phrase": "Ada pertanyaan lain?"}, "Ada pertanyaan lain? Tidak.", False),
    ("startend:end_checker", "th", {"end_phrase": "มีอะไรอีกไหม"}, "คำตอบ\nมีอะไรอีกไหม", True),
    ("startend:end_checker", "th", {"end_phrase": "มีอะไรอีกไหม"}, "มีอะไรอีกไหม คำตอบ", False),
    ("startend:end_checker", "ta", {"end_phrase": "வேறு ஏதாவது?"}, "பதில்.\nவேறு ஏதாவது?", True),
    ("startend:end_checker", "ta", {"end_phrase": "வேறு ஏதாவது?"}, "பதில்.", False),
    ("startend:first_word", "id", {"first_word": "burung"}, "Burung-burung bernyanyi di hutan.", True),
    ("startend:first_word", "id", {"first_word": "burung"}, "Burungnya bernyanyi di hutan.", False),
    ("startend:first_word", "th", {"first_word": "จิ๊บ"}, "จิ๊บ จิ๊บ นกร้องเพลงในป่า", True),
    ("startend:first_word", "th", {"first_word": "จิ๊บ"}, "นกร้องเพลง จิ๊บ", False),
    ("startend:first_word", "ta", {"first_word": "பறவை"}, "\"பறவை பாடுகிறது.", True),
    ("startend:first_word", "ta", {"first_word": "பறவை"}, "காட்டில் பறவை பாடுகிறது.", False),
    ("startend:quotation", "id", {}, '"Halo teman."', True),
    ("startend:quotation", "id", {}, 'Halo "teman".', False),
    ("startend:quotation", "th", {}, "“สวัสดีเพื่อน”", True),
    ("startend:quotation", "th", {}, "สวัสดีเพื่อน", False),
    ("startend:quotation", "ta", {}, '"வணக்கம் நண்பா."', True),
    ("startend:quotation", "ta", {}, '"வணக்கம் நண்பா.', False),
    # ---- combination
    ("combination:repeat_prompt", "id", {"prompt_to_repeat": "Buat resume saya?"}, "Buat resume saya?\nTentu, ini dia.", True),
    ("combination:repeat_prompt", "id", {"prompt_to_repeat": "Buat resume saya?"}, "Buat resume saya?", False),
    ("combination:repeat_prompt", "th", {"prompt_to_repeat": "ช่วยสร้างเรซูเม่"}, "ช่วยสร้างเรซูเม่\nได้เลยครับ", True),
    ("combination:repeat_prompt", "th", {"prompt_to_repeat": "ช่วยสร้างเรซูเม่"}, "ได้เลยครับ ช่วยสร้างเรซูเม่", False),
    ("combination:repeat_prompt", "ta", {"prompt_to_repeat": "என் விண்ணப்பம்"}, "என் விண்ணப்பம் இதோ பதில்.", True),
    ("combination:repeat_prompt", "ta", {"prompt_to_repeat": "என் விண்ணப்பம்"}, "இதோ பதில்.", False),
    ("combination:two_responses", "id", {}, "Jawaban pertama.\n******\nJawaban kedua.", True),
    ("combination:two_responses", "id", {}, "Jawaban pertama.\n***\nJawaban kedua.", False),
    ("combination:two_responses", "th", {}, "คำตอบแรก ****** คำตอบที่สอง", True),
    ("combination:two_responses", "th", {}, "คำตอบแรก ****** คำตอบแรก", False),
    ("combination:two_responses", "ta", {}, "முதல் பதில் ****** இரண்டாம் பதில்", True),
    ("combination:two_responses", "ta", {}, "முதல் ****** இரண்டாம் ****** மூன்றாம்", False),
    # ---- response language (script for th/ta/my, lingua for Latin)
    ("language:response_language", "id", {"response_language": "th"}, "ฉันชอบกินข้าวผัดมาก", True),
    ("language:response_language", "id", {"response_language": "th"}, "Saya suka makan nasi goreng.", False),
    ("language:response_language", "th", {"response_language": "ta"}, "நான் சாதம் சாப்பிட விரும்புகிறேன்.", True),
    ("language:response_language", "th", {"response_language": "ta"}, "ฉันชอบกินข้าว", False),
    ("language:response_language", "ta", {"response_language": "vi"}, "Tôi rất thích ăn phở bò vào buổi sáng.", True),
    ("language:response_language", "ta", {"response_language": "vi"}, "I really like eating beef noodles in the morning.", False),
    ("language:response_language", "vi", {"response_language": "my"}, "ကျွန်တော် ထမင်းစားချင်ပါတယ်", True),
    ("language:response_language", "vi", {"response_language": "id"}, "Saya amat suka makan nasi lemak pada waktu pagi bersama keluarga.", True),
]


@pytest.mark.parametrize("iid,lang,kwargs,response,expected", CASES, ids=[f"{c[0]}-{c[1]}-{c[4]}-{i}" for i, c in enumerate(CASES)])
def test_checker(iid, lang, kwargs, response, expected):
    ctx = CheckContext(lang=lang, prompt=TA_OPTIONS_PROMPT if lang == "ta" else "")
    assert check(iid, response, kwargs, ctx) is expected


def test_every_checker_has_cases_in_three_scripts():
    scripts = {"id": "latin", "vi": "latin", "tl": "latin", "th": "thai", "ta": "tamil", "my": "burmese"}
    covered: dict[str, set] = {}
    for iid, lang, _, resp, exp in CASES:
        covered.setdefault(iid, set()).add((scripts[lang], exp))
    for iid in CHECKERS:
        got = covered.get(iid, set())
        assert any(exp for _, exp in got) and any(not exp for _, exp in got), iid
        if iid != "length_constraints:number_words":  # skipped for Thai/Burmese by design (tested below)
            assert len({s for s, _ in got}) >= 3, (iid, got)


def test_constrained_response_native_options_from_prompt_for_unlisted_language():
    ctx = CheckContext(lang="ta", prompt=TA_OPTIONS_PROMPT)
    assert check("detectable_format:constrained_response", "சிந்தித்தேன். என் பதில் இல்லை.", {}, ctx)
    assert not check("detectable_format:constrained_response", "இல்லை.", {}, ctx)


def test_empty_response_fails_everything():
    ctx = CheckContext(lang="id")
    assert not check("keywords:forbidden_words", "   ", {"forbidden_words": ["x"]}, ctx)
    assert not check("keywords:forbidden_words", "   ", {"forbidden_words": ["x"]}, ctx, loose=True)


def test_loose_accepts_markdown_and_intro_line():
    ctx = CheckContext(lang="id")
    resp = "Tentu! Berikut jawabannya:\n\"Halo teman.\""
    assert not check("startend:quotation", resp, {}, ctx)
    assert check("startend:quotation", resp, {}, ctx, loose=True)
    resp = "**Burung** bernyanyi."
    assert check("startend:first_word", resp, {"first_word": "burung"}, ctx)  # leading markdown tolerated
    resp = "Jawaban saya adalah *ya*."
    assert not check("detectable_format:constrained_response", resp, {}, ctx)
    assert check("detectable_format:constrained_response", resp, {}, ctx, loose=True)
    assert len(loose_variants("a\nb\nc")) == 8


def test_star_blocks_ignore_six_asterisks():
    assert star_blocks("a\n***\nb") == ["a", "b"]
    assert len(star_blocks("a ****** b")) == 1


def test_word_counts_skipped_where_words_are_not_space_delimited():
    for lang in ("th", "my", "km", "lo"):
        assert skips("length_constraints:number_words", lang)
    assert not skips("length_constraints:number_words", "ta")
    assert not skips("keywords:existence", "th")
