"""`sealion compare` on real run directories: one `sealion eval` of a tiny model per module (synthetic SEA-HELM-layout
data), copies of it with known score changes, refusals of runs that are not comparable, the CLI, the leaderboard."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sealion.cli import main
from sealion.compare import stats
from sealion.compare.board import board, tiers
from sealion.compare.load import load_run
from sealion.compare.table import compare, levels
from sealion.errors import ConfigError
from sealion.evaluate import EvalConfig, run_eval
from sealion.evaluate.metrics.classification import normalized_accuracy

SENTIMENT = ("positive", "negative", "neutral")


def _write_data(root: Path) -> None:
    """Synthetic rows (not from any dataset) in SEA-HELM's v1 layout: id and th sentiment, th causal."""
    def write(rel, rows):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    for lang, name in (("id", "id_nusax"), ("th", "th_wisesight_no_q_1000sample")):
        rows = [{"id": i, "label": SENTIMENT[i % 3], "prompts": [{"text": f"kalimat {i} {lang}"}]} for i in range(48)]
        write(f"nlu/sentiment_analysis/data/{name}.jsonl", rows)
    write("nlr/causal/data/th_xcopa.jsonl",
          [{"id": i, "label": i % 2, "prompts": [{"premise": f"ข้อ {i}", "choice1": "ก", "choice2": "ข",
                                                   "question_translated": "ผล"}]} for i in range(30)])


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny_text_dir) -> Path:
    root = tmp_path_factory.mktemp("cmp")
    _write_data(root / "data")
    run_eval(EvalConfig(model=str(tiny_text_dir), out=str(root / "a"), data=str(root / "data"), runs=2, max_tokens=2, temperature=0,
                        tasks=["sentiment", "causal"], languages=["id", "th"], progress=False))
    return root / "a"


@pytest.fixture(scope="module")
def base(eval_run) -> Path:
    """The runner's directory with known scores: item i right when i mod 5 < 3 (60%); run 1 flips every 8th item."""
    return _variant(eval_run, eval_run.parent / "base", _pattern)


def _pattern(lang, task, run, i, row):
    right = i % 5 < 3
    return {**row, "score": float(right != (run == "run_1" and i % 8 == 0))}


def _variant(src: Path, dst: Path, edit) -> Path:
    """A copy of a run directory whose per-item rows pass through edit(lang, task, run, index, row)."""
    shutil.copytree(src, dst)
    for f in sorted((dst / "runs").glob("run_*/*/*.jsonl")):
        rows = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
        rows = [edit(f.parent.name, f.stem, f.parent.parent.name, i, r) for i, r in enumerate(rows)]
        f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r is not None), encoding="utf-8")
    return dst


def _better_on_id_sentiment(lang, task, run, i, row):
    """Fixes the first 16 items that are wrong in both of base's runs (an improvement on id sentiment only)."""
    if lang == "id" and task == "sentiment" and i in _both_wrong()[:16]:
        row = {**row, "score": 1.0}
    return row


def _both_wrong() -> list[int]:
    return [i for i in range(48) if not any(_pattern("", "", f"run_{k}", i, {})["score"] for k in (0, 1))]


def test_loads_the_runner_layout_and_matches_its_scores(eval_run, base):
    raw = load_run(eval_run / "results.json")
    res = json.loads((eval_run / "results.json").read_text())
    t = raw.tasks[("id", "sentiment")]
    golds = [str(x) for x in t.labels]
    per_run = [normalized_accuracy(golds, [g if s else "null" for g, s in zip(golds, r)]) for r in t.scores]
    assert res["results"]["id"]["nlu"]["sentiment"]["per_run"] == pytest.approx(per_run)
    run = load_run(base)
    assert set(run.tasks) == {("id", "sentiment"), ("th", "sentiment"), ("th", "causal")}
    t = run.tasks[("id", "sentiment")]
    assert t.scores.shape == (2, 48) and t.competency == "nlu" and t.kind == "choice" and t.classification()
    # the compare score is SEA-HELM's normalised balanced accuracy (independent implementation: evaluate.metrics)
    golds = [str(x) for x in t.labels]
    per_run = [normalized_accuracy(golds, [g if s else "null" for g, s in zip(golds, r)]) for r in t.scores]
    lv = {x.name: x for x in levels([run, run], n_boot=200)}
    assert min(per_run) > 0 and lv["id/nlu/sentiment"].points[0] == pytest.approx(np.mean(per_run))
    # causal has two labels (A/B): balanced accuracy with chance 1/2, language = mean of competencies
    assert lv["th"].points[0] == pytest.approx((lv["th/nlr"].points[0] + lv["th/nlu"].points[0]) / 2)
    assert list(lv)[:2] == ["SEA average", "id"] and lv["SEA average"].languages == ["id", "th"]


def test_identical_runs_show_no_difference(base, tmp_path):
    same = _variant(base, tmp_path / "same", lambda *a: a[-1])
    result = compare([load_run(base), load_run(same)], n_boot=200)
    rows = result["comparisons"][0]["rows"]
    assert all(r["diff"] == 0 and not r["significant"] for r in rows)
    assert {r["name"] for r in rows} >= {"SEA average", "id", "th", "th/nlr", "th/nlu/sentiment"}


def test_a_known_improvement_is_found_where_it_is(base, tmp_path):
    better = _variant(base, tmp_path / "better", _better_on_id_sentiment)
    a, b = load_run(base), load_run(better)
    result = compare([a, b], n_boot=1000)
    rows = {r["name"]: r for r in result["comparisons"][0]["rows"]}
    s = rows["id/nlu/sentiment"]
    assert s["significant"] and s["diff"] > 20 and s["lo"] > 0 and s["mcnemar_p"] < 0.001
    assert (s["only_a"], s["only_b"]) == (0, 16)  # per-item majorities: 16 fixed, none broken
    assert rows["id"]["significant"] and rows["SEA average"]["diff"] == pytest.approx(rows["id"]["diff"] / 2)
    assert not rows["th"]["significant"] and rows["th"]["diff"] == 0
    # the point difference is the difference of the two runs' scores (SEA-HELM metric on each)
    expected = np.mean([normalized_accuracy([str(x) for x in b.tasks[("id", "sentiment")].labels],
                                            [str(g) if sc else "null" for g, sc in
                                             zip(b.tasks[("id", "sentiment")].labels, r)])
                        for r in b.tasks[("id", "sentiment")].scores]) - s["a"]
    assert s["diff"] == pytest.approx(expected)
    # the leaderboard separates the models on id, ties them on th
    cols = {c["name"]: c for c in board([a, b], levels([a, b], n_boot=1000))["columns"]}
    assert [r["model"] for r in cols["id"]["rows"]] == [b.label, a.label]
    assert [r["tier"] for r in cols["id"]["rows"]] == [1, 2]
    assert [r["tier"] for r in cols["th"]["rows"]] == [1, 1]


@pytest.mark.parametrize("edit,message", [
    (lambda lang, task, run, i, r: None if (task == "causal" and i == 3) else r, "th/causal: items differ"),
    (lambda lang, task, run, i, r: {**r, "prompt": ["changed"]} if task == "causal" and i == 5 else r,
     "th/causal: prompts differ for 1 of 30 items"),
])
def test_refuses_runs_that_differ(base, tmp_path, edit, message):
    other = _variant(base, tmp_path / "other", edit)
    with pytest.raises(ConfigError, match=message):
        levels([load_run(base), load_run(other)])


def test_refuses_other_tasks_and_versions(base, tmp_path):
    fewer = _variant(base, tmp_path / "fewer", lambda *a: a[-1])
    for f in (fewer / "runs").glob("run_*/th/causal.jsonl"):
        f.unlink()
    with pytest.raises(ConfigError, match=r"different tasks .* only in base: th/causal"):
        levels([load_run(base), load_run(fewer)])
    versioned = _variant(base, tmp_path / "v2", lambda *a: a[-1])
    res = json.loads((versioned / "results.json").read_text())
    res["results"]["th"]["nlr"]["causal"]["version"] = 2
    (versioned / "results.json").write_text(json.dumps(res))
    res["results"]["th"]["nlr"]["causal"]["version"] = 1
    v1 = _variant(base, tmp_path / "v1", lambda *a: a[-1])
    (v1 / "results.json").write_text(json.dumps(res))
    with pytest.raises(ConfigError, match="th/causal: task versions differ"):
        levels([load_run(v1), load_run(versioned)])


def test_cli_prints_table_and_writes_json_and_html(base, tmp_path, capsys):
    better = _variant(base, tmp_path / "better", _better_on_id_sentiment)
    out = tmp_path / "cmp"
    assert main(["compare", str(base), str(better), "--out", str(out), "--replicates", "500"]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.strip().startswith("sentiment") and "*" in x)
    assert "McNemar" in text and "SEA average" in text and line
    saved = json.loads((out / "compare.json").read_text())
    assert saved["comparisons"][0]["a"] == "base" and saved["comparisons"][0]["b"] == "better"
    page = (out / "compare.html").read_text()
    assert page.count("<svg") == 3 and "class=\"cell\"" in page and "class=\"interval\"" in page
    assert not any(x in page for x in ("<script", "<link", 'src="http', "href=\"http"))
    assert main(["compare", str(base), str(better), str(base / "results.json"), "--board", "--names",
                 "base,better,again", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "leaderboard" in text and "tier 1" in text
    assert json.loads((out / "compare.json").read_text())["board"]["models"] == ["base", "better", "again"]


def test_cli_errors_are_one_line(base, tmp_path):
    r = subprocess.run([sys.executable, "-m", "sealion.cli", "compare", str(base), str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no per-item files" in r.stderr


def test_tiers_group_models_not_separable_from_the_leader():
    rng = np.random.default_rng(7)
    base = (rng.random(300) < 0.5).astype(float)
    models = [base.copy() for _ in range(3)]
    models[0][np.flatnonzero(base == 0)[:60]] = 1  # clearly best
    models[1][np.flatnonzero(base == 0)[:58]] = 1  # two items behind the leader: not separable
    ts = [stats.TaskScores(m) for m in models]
    reps = stats.paired_replicates(ts, n_boot=1000, rng=np.random.default_rng(1))
    tier, q = tiers(np.array([stats.task_score(t) for t in ts]), reps)
    assert tier == [1, 1, 2] and q[0] is None and q[1] > 0.05


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_page_renders_in_headless_chromium(base, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    better = _variant(base, tmp_path / "better", _better_on_id_sentiment)
    assert main(["compare", str(base), str(better), "--board", "--out", str(tmp_path / "cmp"), "--replicates",
                 "200"]) == 0
    page = tmp_path / "cmp" / "compare.html"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    # the browser parsed the inline SVG into elements: 2 heat-map rows x 3 columns of cells, one interval per level
    assert dom.count("<svg") == 3 and dom.count('class="cell"') == 6 and dom.count('class="interval"') == 9
    assert "Leaderboard" in dom and "net::ERR" not in res.stderr


def test_recipe_report_says_which_stage_helped(base, tmp_path):
    """An evaluate dir as the recipe writes it: distillation lowers every sequence's KL by 0.2 nats/token (th) and
    improves SEA-HELM id sentiment; merging changes nothing. The report's table says so, language by language."""
    from sealion.compare.stages import stage_effects
    from sealion.recipe.report import build_report

    ev = tmp_path / "run" / "evaluate"
    ev.mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        lang = "id" if i % 2 else "th"
        tokens = int(rng.integers(10, 40))
        kl = float(rng.gamma(2.0, 0.5) * tokens)
        drop = 0.2 * tokens if lang == "th" else 0.0
        for model, value in (("teacher", 0.0), ("student-init", kl), ("student", kl - drop), ("merged", kl - drop)):
            rows.append({"model": model, "id": f"r{i}", "lang": lang, "tokens": tokens, "kl": value, "top1": 0.0,
                         "nll": 1.0})
    (ev / "heldout_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copytree(base, ev / "seahelm" / "student-init")
    _variant(base, ev / "seahelm" / "student", _better_on_id_sentiment)
    _variant(base, ev / "seahelm" / "merged", _better_on_id_sentiment)
    effects = {(r["step"], r["measure"], r["lang"]): r for r in stage_effects(ev, n_boot=500)["rows"]}
    assert effects[("distillation", "held-out KL", "th")]["verdict"] == "closer to the teacher"
    assert effects[("distillation", "held-out KL", "th")]["diff"] == pytest.approx(-0.2)
    assert effects[("distillation", "held-out KL", "id")]["verdict"] == "no change beyond noise"
    assert effects[("distillation", "SEA-HELM", "id")]["verdict"] == "better"
    assert effects[("distillation", "SEA-HELM", "th")]["verdict"] == "no change beyond noise"
    assert all(r["verdict"] == "no change beyond noise" for k, r in effects.items() if k[0] == "merging")
    data = build_report(tmp_path / "run", [], "name: t\n", title="t")
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Which stage helped" in html and "closer to the teacher" in html and html.count("<tr>") >= 12
    assert len(data["stage_effects"]["rows"]) == len(effects)


def test_stale_files_of_an_earlier_eval_in_the_same_directory_are_ignored(base, tmp_path):
    """`sealion eval --out D` run first with more languages/runs, then with fewer: D still holds the old per-item
    files, which are not part of the new run (results.json and config.json say what is)."""
    d = _variant(base, tmp_path / "reused", lambda lang, task, run, i, row: row)
    res = json.loads((d / "results.json").read_text())
    res["results"].pop("th")
    (d / "results.json").write_text(json.dumps(res))
    cfg = json.loads((d / "config.json").read_text())
    cfg["runs"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    run = load_run(d)
    assert set(run.tasks) == {("id", "sentiment")}
    assert run.tasks[("id", "sentiment")].scores.shape == (1, 48)
