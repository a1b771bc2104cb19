"""LongProc: prompts from SEA-HELM's tree, the five scoring rules on hand-made and real gold outputs, bad rows, and a
tiny-model run. Expected values are worked out by hand in the comments."""

import json

import pytest
import yaml

from sealion.errors import ConfigError, DataError
from sealion.evaluate import EvalConfig, run_eval, seahelm_tree
from sealion.evaluate.data import DataSource, MissingData
from sealion.evaluate.metrics import longproc as lp
from sealion.evaluate.tasks import Item, get_kind, get_spec, resolve_tasks

TASKS_WITH_ROWS = {"countdown": ["0p5k", "2k", "8k"], "path_traversal": ["0p5k"], "tom_tracking": ["0p5k", "2k"]}
SEALION_NAME = {"countdown": "countdown", "path_traversal": "path-traversal", "tom_tracking": "tom-tracking"}


@pytest.fixture(scope="module")
def longproc_dir(tree_dir):
    d = tree_dir / "seahelm_tasks" / "long_context" / "longproc"
    if not d.is_dir():
        pytest.skip("SEA-HELM's longproc tree is absent")
    return d


def _block(longproc_dir, task, token):
    return yaml.safe_load((longproc_dir / task / "config.yaml").read_text(encoding="utf-8"))[f"{task}_{token}"]


def _first_rows(longproc_dir, task, token, n=2):
    block = _block(longproc_dir, task, token)
    path = longproc_dir / task / "data" / block["languages"]["en"]["filepath"].split("/")[-1]
    with open(path, encoding="utf-8") as f:
        return [json.loads(next(f)) for _ in range(n)]


def _expected_prompt(block, row):
    """SEA-HELM's dataloader: preamble formatted with answer_tag, a blank line, the task template over prompts[0]."""
    t = block["languages"]["en"]["prompt_template"]
    body = t["task_template"].format(**row["prompts"][0])
    return (t["preamble"].format(answer_tag=t["answer_tag"]) + "\n\n" + body).strip()


# --------------------------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("task,token", [(t, k) for t, ks in TASKS_WITH_ROWS.items() for k in ks])
def test_prompts_byte_equal_to_the_tree(tree_dir, longproc_dir, task, token):
    block = _block(longproc_dir, task, token)
    rows = _first_rows(longproc_dir, task, token)
    expected = [_expected_prompt(block, r) for r in rows]
    length = {"0p5k": "0.5k"}.get(token, token)
    # sealion's spec, the tree under --data
    spec = get_spec(f"{SEALION_NAME[task]}@{length}")
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, "en", kind.load_rows(spec, "en", DataSource.parse(str(tree_dir)), limit=2))
    assert [kind.user_turns(spec, "en", it)[0] for it in items] == expected
    assert kind.max_tokens(spec, "en") == block["languages"]["en"]["max_tokens"]
    # the tree's own spec (--seahelm): what the runner sends
    tree = seahelm_tree.load_tree(str(tree_dir))
    tspec = tree.spec(f"{task}_{token}")
    tkind = get_kind(tspec.kind)
    titems = tkind.make_items(tspec, "en", tkind.load_rows(tspec, "en", DataSource("hub"), limit=2))
    assert [seahelm_tree.contents(tspec, "en", it)[-1] for it in titems] == expected
    assert tspec.metric == block["metric"] and tspec.group == "longproc"


def test_prompt_details_seen_in_the_tree(tree_dir):
    spec = get_spec("tom-tracking@0.5k")
    kind = get_kind(spec.kind)
    item = kind.make_items(spec, "en", kind.load_rows(spec, "en", DataSource.parse(str(tree_dir)), limit=1))[0]
    prompt = kind.user_turns(spec, "en", item)[0]
    assert "}}" not in prompt and "patio's ledge}" in prompt  # the YAML's doubled braces are format escapes
    spec = get_spec("countdown@0.5k")
    kind = get_kind(spec.kind)
    item = kind.make_items(spec, "en", kind.load_rows(spec, "en", DataSource.parse(str(tree_dir)), limit=1))[0]
    assert kind.user_turns(spec, "en", item)[0].endswith("\n\nNumbers: [21, 16, 17, 26]\nTarget: 46")


def test_names_and_lengths(tree_dir):
    assert get_spec("countdown@2k").options["length"] == 2000
    assert resolve_tasks(["longproc"])["en"][:3] == ["countdown@0.5k", "countdown@2k", "countdown@8k"]
    tree = seahelm_tree.load_tree(str(tree_dir))
    assert tree.resolve_plan(["countdown@2k", "tom-tracking@0.5k"]) == {"en": ["countdown_2k", "tom_tracking_0p5k"]}
    assert len(tree.resolve_plan(["longproc"])["en"]) == 14  # the tree's aggregation group: 5 tasks x lengths
    with pytest.raises(ConfigError, match="lengths: 0p5k, 2k, 8k"):
        spec = get_spec("countdown@3k")
        get_kind(spec.kind).load_rows(spec, "en", DataSource.parse(str(tree_dir)))
    with pytest.raises(MissingData, match="--data"):
        spec = get_spec("countdown@2k")
        get_kind(spec.kind).load_rows(spec, "en", DataSource("hub"))


# --------------------------------------------------------------------------------------------------- countdown


def test_countdown_solution_arithmetic():
    nums, target = [21, 16, 17, 26], 46
    assert lp.countdown_solution_ok(nums, target, "21 + 16 = 37\n37 - 17 = 20\n26 + 20 = 46")
    assert lp.countdown_solution_ok(nums, target, "21+16=37\n26-17=9\n37+9=46")  # another valid order
    assert not lp.countdown_solution_ok(nums, target, "21 + 16 = 38\n38 - 17 = 21\n26 + 20 = 46")  # 21+16 is 37
    assert not lp.countdown_solution_ok(nums, target, "21 + 21 = 42\n42 - 17 = 25\n26 + 20 = 46")  # 21 used twice
    assert not lp.countdown_solution_ok(nums, target, "21 + 16 = 37\n37 - 17 = 20\n26 - 20 = 6")  # 6 is not 46
    assert not lp.countdown_solution_ok(nums, target, "21 + 16 = 37\n37 + 9 = 46")  # two lines for four numbers
    assert not lp.countdown_solution_ok(nums, target, None)
    # exact division: 8/4 = 2 -> {3, 2, 2}; 3+2 = 5 -> {2, 5}; 5+2 = 7
    assert lp.countdown_solution_ok([8, 4, 3, 2], 7, "8 / 4 = 2\n3 + 2 = 5\n5 + 2 = 7")
    assert not lp.countdown_solution_ok([9, 2, 3, 1], 7, "9 / 2 = 4\n4 + 3 = 7\n7 * 1 = 7")  # 9/2 is 4.5


def test_countdown_procedure_partial_counts_like_longproc():
    gold = ("<Search Procedure>\nInitial number set: [1, 2, 3], target: 6.\n |- Pick two numbers (1, 2)\n"
            "  |- Try 2 + 1 = 3. Add 3 to the number set.\n  |- Try 2 - 1 = 1. Evaluate 1 != 6, drop this branch.\n"
            "</Search Procedure>")
    init, pick = "Initial number set: [1, 2, 3], target: 6.", " |- Pick two numbers (1, 2)"
    # a try with the same operation and verdict agrees even with a wrong result; the next try keeps a dropped
    # branch: first disagreement at index 2 of the 3 lines after the initial one -> 2/3
    pred = f"{init}\n{pick}\n  |- Try 2 + 1 = 4. Add 4 to the number set.\n  |- Try 2 - 1 = 1. Add 1 to the number set."
    assert lp.countdown_procedure_partial(pred, gold) == pytest.approx(2 / 3)
    assert lp.countdown_procedure_partial(f"{init}\n |- Pick two numbers (1, 3)", gold) == 0.0  # pick differs at 0
    assert lp.countdown_procedure_partial("Initial number set: [3, 2, 1]", gold) == 0.0  # initial line differs
    # the whole procedure, no disagreement: LongProc's counter stops one short -> (3 - 1) / 3
    assert lp.countdown_procedure_partial(gold, gold) == pytest.approx(2 / 3)


def test_countdown_kind_scores():
    kind = get_kind("longproc-countdown")
    item = Item("0", [{}], {"nums": [21, 16, 17, 26], "target": 46, "search_procedure": ""})
    good = kind.score_one(item, "...\n<Solution>\n21 + 16 = 37\n37 - 17 = 20\n26 + 20 = 46\n</Solution>")
    assert good.score == 1.0 and good.details == {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
    untagged = kind.score_one(item, "21 + 16 = 37\n37 - 17 = 20\n26 + 20 = 46")
    assert untagged.score == 0.0 and untagged.details["extraction_rate"] == 0.0
    m = kind.task_metrics(get_spec("countdown"), "en", [item, item], [good, untagged])
    assert m == {"normalized_accuracy": 50.0, "accuracy": 50.0, "partial_accuracy": 50.0, "extraction_rate": 50.0}


# --------------------------------------------------------------------------------------------------- path traversal

ROUTE = "From A, take a bus to B.\nFrom B, take a train to C.\nFrom C, take a ferry to D."
EDGES = [{"src": "A", "dst": "B", "transit": "bus"}, {"src": "B", "dst": "C", "transit": "train"},
         {"src": "C", "dst": "D", "transit": "ferry"}, {"src": "D", "dst": "E", "transit": "plane"}]


def test_route_scores():
    assert lp.route_scores(ROUTE, ROUTE) == {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}
    wrong = "From A, take a bus to B.\nFrom B, take a plane to C.\nFrom C, take a ferry to D."
    # wrong at line 2 of 3: LongProc counts the lines up to and including the first wrong one -> 2/3
    assert lp.route_scores(wrong, ROUTE)["partial_accuracy"] == pytest.approx(2 / 3)
    assert lp.route_scores(wrong, ROUTE)["accuracy"] == 0.0
    assert lp.route_scores("From A, take a bus to B.", ROUTE)["partial_accuracy"] == pytest.approx(1 / 3)  # prefix
    assert lp.route_scores(None, ROUTE) == {"accuracy": 0.0, "partial_accuracy": 0.0, "extraction_rate": 0.0}
    assert lp.route_is_valid(ROUTE, EDGES, "A", "D")
    assert not lp.route_is_valid(wrong, EDGES, "A", "D")  # no plane from B
    assert not lp.route_is_valid(ROUTE, EDGES, "A", "E")  # stops short of E
    kind = get_kind("longproc-path-traversal")
    s = kind.score_one(Item("0", [{}], ROUTE, {"context_repr": EDGES, "question_repr": ["A", "D"]}),
                       f"I follow the links.\n<Route>\n{ROUTE}\n</Route>")
    assert s.score == 1.0 and s.details["valid_route"] == 1.0 and s.extracted == ROUTE


# --------------------------------------------------------------------------------------------------- ToM tracking

TOM = ("Ann's belief on the ball:\n- Step 0: (initial state) {Ann location: den; ball location: den's box; Ann sees "
       "ball: True; Ann's belief on ball: den's box}\n- Step 1: (Ann location changed) {Ann location: hall; ball "
       "location: den's box; Ann sees ball: False; Ann's belief on ball: den's box}\n- Step 2: (ball location "
       "changed) {Ann location: hall; ball location: hall's shelf; Ann sees ball: True; Ann's belief on ball: "
       "hall's shelf}\nFinal Answer: the hall's shelf")


def test_tom_scores():
    assert lp.tom_scores(TOM, TOM) == {"accuracy": 1.0, "partial_accuracy": 1.0}
    # case, punctuation and the stop words (the, location, belief ...) do not count; the final answer line is not read
    loose = TOM.lower().replace("den's box;", "the den's box,").replace("Final Answer: the hall's shelf", "x")
    assert lp.tom_scores(loose, TOM)["accuracy"] == 1.0
    wrong = TOM.replace("Ann location: hall; ball location: den's box", "Ann location: den; ball location: den's box")
    assert lp.tom_scores(wrong, TOM) == {"accuracy": 0.0, "partial_accuracy": pytest.approx(1 / 3)}  # step 1 wrong
    short = "\n".join(TOM.split("\n")[:3])  # header + steps 0, 1
    assert lp.tom_scores(short, TOM) == {"accuracy": 0.0, "partial_accuracy": pytest.approx(2 / 3)}
    assert lp.tom_scores("I do not know.", TOM) == {"accuracy": 0.0, "partial_accuracy": 0.0}


# --------------------------------------------------------------------------------------------------- HTML to TSV

GOLD_TSV = "name\tprice\nApple\t$1\nPear\t$2\nFig\t$3"


def test_tsv_scores():
    assert lp.tsv_scores(GOLD_TSV, GOLD_TSV)["f1"] == 1.0
    # two of three gold rows, both right ("$1" -> "1", "The Pear" -> "pear"); a trailing remark line is dropped:
    # precision 2/2, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    s = lp.tsv_scores("Name\tPrice\napple\t1\nThe Pear\t$2\nThat is all.", GOLD_TSV)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, pytest.approx(2 / 3), pytest.approx(0.8))
    # one right, one wrong, and a row of the wrong width in the middle (an N/A row): precision 1/3, recall 1/3
    s = lp.tsv_scores("name\tprice\nApple\t$1\nbroken\nKiwi\t$4", GOLD_TSV)
    assert (s["precision"], s["recall"], s["f1"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert lp.tsv_scores("name\nApple\nPear", GOLD_TSV)["f1"] == 0.0  # one column, gold has two
    assert lp.tsv_scores(None, GOLD_TSV)["error"] and lp.tsv_scores("name\tprice", GOLD_TSV)["f1"] == 0.0
    kind = get_kind("longproc-html-to-tsv")
    s = kind.score_one(Item("0", [{}], GOLD_TSV), f"Here:\n```tsv\n{GOLD_TSV}\n```")
    assert s.score == 1.0 and s.extracted == GOLD_TSV


# --------------------------------------------------------------------------------------------------- travel planning

PLAN = ("**Day 1-5:** Arriving in Dublin and visit Dublin for 5 days.\n**Day 5:** Fly from Dublin to Manchester.\n"
        "**Day 5-7:** Visit Manchester for 3 days.\n**Day 7:** Fly from Manchester to Split.\n"
        "**Day 7-13:** Visit Split for 7 days.")


def test_travel_plan():
    # stays from the flight days: 1..5 (5 days), 5..7 (3), 7..13 (7)
    assert lp.parse_plan(PLAN) == [("Dublin", 5), ("Manchester", 3), ("Split", 7)]
    assert lp.travel_plan_ok("Dublin**Manchester**Split", "5**3**7", PLAN)
    assert not lp.travel_plan_ok("Dublin**Manchester**Split", "5**3**7", PLAN.replace("7-13", "7-12"))  # Split 6
    assert not lp.travel_plan_ok("Manchester**Dublin**Split", "3**5**7", PLAN)
    assert not lp.travel_plan_ok("Dublin**Manchester**Split", "5**3**7", None)
    gold = "<Solving Procedure>\nCurrent day: 1.\n|- Try Dublin.\n|- Yes.\n</Solving Procedure>\n\n<Plan>\n</Plan>"
    # lines agree after normalisation until "|- No." (index 3; the gold has 7 non-empty lines, tags included) -> 3/7
    pred = "<Solving Procedure>\ncurrent day 1\n|- Try Dublin!\n|- No.\n</Solving Procedure>"
    assert lp.travel_procedure_partial(pred, gold) == pytest.approx(3 / 7)
    kind = get_kind("longproc-travel-planning")
    item = Item("0", [{}], {"ground_truth_cities": "Dublin**Manchester**Split", "ground_truth_durations": "5**3**7",
                            "solving_procedure": gold})
    s = kind.score_one(item, f"...\n<Plan>\n{PLAN}\n</Plan>")
    assert s.score == 1.0 and s.details == {"accuracy": 1.0, "partial_accuracy": 1.0, "extraction_rate": 1.0}


# --------------------------------------------------------------------------------------------------- real gold rows


@pytest.mark.parametrize("name", ["countdown@0.5k", "countdown@8k", "path-traversal@0.5k", "tom-tracking@2k"])
def test_gold_outputs_of_the_tree_score_100(tree_dir, name):
    spec = get_spec(name)
    kind = get_kind(spec.kind)
    items = kind.make_items(spec, "en", kind.load_rows(spec, "en", DataSource.parse(str(tree_dir))))
    assert len(items) == 200

    def gold(it):
        if spec.kind == "longproc-countdown":
            return it.label["search_procedure"]
        return f"<Route>\n{it.label}\n</Route>" if spec.kind == "longproc-path-traversal" else it.label

    scores = [kind.score_one(it, gold(it)) for it in items]
    assert kind.task_metrics(spec, "en", items, scores)[spec.metric] == 100.0
    if spec.kind == "longproc-countdown":  # the rows' other valid solutions pass the arithmetic check too
        for it in items[:50]:
            alt = it.metadata["solution"]
            assert lp.countdown_solution_ok(it.label["nums"], it.label["target"], "\n".join(alt))
            broken = alt[:-1] + [alt[-1].replace("=", "+ 1 =")]
            assert not lp.countdown_solution_ok(it.label["nums"], it.label["target"], "\n".join(broken))
    if spec.kind == "longproc-path-traversal":
        it = items[0]
        assert all(s.details["valid_route"] == 1.0 for s in scores)
        skipped = "\n".join(it.label.split("\n")[1:])  # the first hop left out
        assert not lp.route_is_valid(skipped, it.metadata["context_repr"], *it.metadata["question_repr"])


# --------------------------------------------------------------------------------------------------- files


HTML_ROW = {"prompts": [{"tsv_header": "name\tprice", "html_str": "<ul><li>Apple $1</li></ul>", "task_topic": "fruit",
                         "task_description": "name, price", "filtering_instruction": ""}],
            "label": "name\tprice\nApple\t$1", "metadata": {}}


def test_hub_only_rows_from_data_and_bad_lines(tree_dir, longproc_dir, tmp_path):
    tree = seahelm_tree.load_tree(str(tree_dir))
    spec = tree.spec("html_to_tsv_0p5k")
    kind = get_kind(spec.kind)
    with pytest.raises(MissingData, match="html_to_tsv_0.5k_en.jsonl"):
        kind.load_rows(spec, "en", DataSource("hub"))
    f = tmp_path / "html_to_tsv_0.5k_en.jsonl"
    f.write_text(json.dumps(HTML_ROW) + "\n", encoding="utf-8")
    items = kind.make_items(spec, "en", kind.load_rows(spec, "en", DataSource.parse(str(tmp_path))))
    assert seahelm_tree.contents(spec, "en", items[0])[-1] == _expected_prompt(
        _block(longproc_dir, "html_to_tsv", "0p5k"), HTML_ROW)
    assert "{Your TSV output}" in seahelm_tree.contents(spec, "en", items[0])[-1]
    # sealion's name: the tree's config under --data, the rows from another --data root
    ours = get_spec("html-to-tsv@0.5k")
    okind = get_kind(ours.kind)
    oitems = okind.make_items(ours, "en", okind.load_rows(ours, "en", DataSource.parse(f"{tree_dir},{tmp_path}")))
    assert okind.user_turns(ours, "en", oitems[0])[0] == seahelm_tree.contents(spec, "en", items[0])[-1]
    assert okind.max_tokens(ours, "en") == 1024
    f.write_text(json.dumps(HTML_ROW) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{f}:2: invalid JSON"):
        kind.load_rows(spec, "en", DataSource.parse(str(tmp_path)))
    row = {**HTML_ROW, "prompts": [{"html_str": "<p/>"}]}
    f.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{f}:1: prompts\[0\] has no filtering_instruction"):
        kind.load_rows(spec, "en", DataSource.parse(str(tmp_path)))
    f.write_text(json.dumps({**HTML_ROW, "label": 3}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{f}:1: label must be the gold TSV"):
        kind.load_rows(spec, "en", DataSource.parse(str(tmp_path)))


# --------------------------------------------------------------------------------------------------- end to end


def test_end_to_end_on_the_tiny_model(tiny_text_dir, tree_dir, longproc_dir, tmp_path):
    res = run_eval(EvalConfig(model=str(tiny_text_dir), tasks=["path_traversal_0p5k", "html_to_tsv_0p5k"],
                              seahelm=str(tree_dir), runs=1, limit=2, max_tokens=4, out=str(tmp_path / "r"),
                              progress=False))
    entry = res["results"]["en"]["long-context"]["path_traversal_0p5k"]
    assert entry["n_items"] == 2 and entry["metric"] == "normalized_accuracy"
    assert entry["kind"] == "longproc-path-traversal" and entry["group"] == "longproc"
    assert set(entry["metrics"]) >= {"normalized_accuracy", "partial_accuracy", "extraction_rate", "valid_route"}
    assert any(n.startswith("en/html_to_tsv_0p5k: skipped") and "--data" in n for n in res["notes"])
    rows = [json.loads(x) for x in (tmp_path / "r/runs/run_0/en/path_traversal_0p5k.jsonl").read_text().splitlines()]
    want = [_expected_prompt(_block(longproc_dir, "path_traversal", "0p5k"), r)
            for r in _first_rows(longproc_dir, "path_traversal", "0p5k")]
    assert [r["prompt"][0][0]["content"] for r in rows] == want
    assert all(isinstance(r["score"], float) for r in rows)


def test_end_to_end_with_sealion_names(tiny_text_dir, tree_dir, longproc_dir, tmp_path):
    """Without --seahelm: sealion's name, the tree under --data; the same prompt goes to the model."""
    res = run_eval(EvalConfig(model=str(tiny_text_dir), tasks=["tom-tracking@0.5k"], data=str(tree_dir), runs=1,
                              limit=2, max_tokens=4, out=str(tmp_path / "r"), progress=False))
    entry = res["results"]["en"]["long-context"]["tom-tracking@0.5k"]
    assert entry["n_items"] == 2 and set(entry["metrics"]) >= {"normalized_accuracy", "partial_accuracy"}
    rows = [json.loads(x) for x in (tmp_path / "r/runs/run_0/en/tom-tracking@0.5k.jsonl").read_text().splitlines()]
    want = [_expected_prompt(_block(longproc_dir, "tom_tracking", "0p5k"), r)
            for r in _first_rows(longproc_dir, "tom_tracking", "0p5k")]
    assert [r["prompt"][0][0]["content"] for r in rows] == want
