"""The whole recipe on tiny models: every stage for real (engine generation, init-student, capture, training,
merge, held-out evaluation, report), then skip / rerun / kill-and-resume on that run, and the report in Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sealion.recipe import plan_recipe, run_recipe
from sealion.recipe.runner import DONE, read_done
from sealion.recipe.stages import STAGES

REPO = Path(__file__).resolve().parents[2]
# the module's first test also pays for the shared tiny run (a couple of minutes on an idle 2-core machine)
pytestmark = pytest.mark.timeout(1800)
MODELS = ("teacher", "student-init", "student", "merged")
RUN_STAGES = tuple(s for s in STAGES if s != "export")  # tiny_run has no export stage (see tiny_recipe)


def tiny_recipe(teacher: Path, **merge) -> dict:
    """3 of the tiny teacher's 6 layers: not llama.cpp's Gemma 3 layer order, so no export stage here (the
    tiny_export_run below has one)."""
    return {
        "name": "tiny",
        "teacher": str(teacher),
        "student": {"num_layers": 3},
        "data": {"languages": ["id", "th"], "per_language": 3, "heldout_per_language": 2,
                 "generate": {"max_new_tokens": 6, "batch_size": 8}, "max_seq_len": 64},
        "capture": {"top_k": 8, "rows_per_shard": 2, "batch_size": 4},
        "distill": {"max_steps": 4, "batch_size": 2, "micro_batch_size": 2, "lr": 1e-3, "save_every": 2},
        "merge": {"method": "linear", "weight": 0.5, **merge},
        "export": {"enabled": False},
        # SEA-HELM is asked for but gets no --data: the run must say it was skipped
        "evaluate": {"heldout": {"bootstrap": 50, "batch_size": 4}, "seahelm": {"suite": "seahelm-mini"},
                     "turn_end": {"prompts": 4, "max_new_tokens": 8}},
    }


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def report_data(run: Path) -> dict:
    return json.loads((run / "report" / "report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_gemma3_dir) -> dict:
    root = tmp_path_factory.mktemp("recipe")
    recipe = write_recipe(root / "tiny.yaml", tiny_recipe(tiny_gemma3_dir))
    run = root / "run"
    statuses = run_recipe(recipe, run, log=lambda m: None)
    return {"root": root, "recipe": recipe, "run": run, "statuses": statuses, "teacher": tiny_gemma3_dir}


@pytest.fixture(scope="module")
def tiny_export_run(tmp_path_factory) -> Path:
    """A 12-layer tiny Gemma 3 teacher and a 6-layer student in llama.cpp's layer order (5 sliding, 1 full)."""
    from sealion.models.tiny import make_tiny_gemma3

    root = tmp_path_factory.mktemp("recipe-export")
    teacher = make_tiny_gemma3(root / "teacher12", num_hidden_layers=12)
    data = tiny_recipe(teacher)
    data["student"] = {"layers": [0, 1, 3, 6, 8, 11]}
    data["export"] = {"quants": ["q8_0", "q4_k_m"], "max_new_tokens": 8}
    data["evaluate"] = {"heldout": {"bootstrap": 20, "batch_size": 4}, "turn_end": {"enabled": False}}
    run = root / "run"
    run_recipe(write_recipe(root / "tiny-export.yaml", data), run, log=lambda m: None)
    return run


def test_export_stage_writes_ggufs_that_llama_cpp_runs(tiny_export_run):
    """The final (merged) model as q8_0 and q4_k_m GGUFs, their drift per language, and one held-out prompt per
    language answered through the llama.cpp backend; the report shows them."""
    run = tiny_export_run
    export = run / "export"
    for q in ("q8_0", "q4_k_m"):
        assert (export / f"model.{q}.gguf").stat().st_size > 0
    fidelity = json.loads((export / "fidelity.json").read_text())
    assert set(fidelity) == {"q8_0", "q4_k_m"}
    for q, r in fidelity.items():
        assert set(r["languages"]) >= {"id", "th", "en"} and r["model"].endswith("merge/model")
        assert 0 <= r["mean"]["kl"] and 0 <= r["mean"]["top1"] <= 1
    assert fidelity["q8_0"]["mean"]["kl"] < fidelity["q4_k_m"]["mean"]["kl"]  # fewer bits, more drift
    answers = [json.loads(x) for x in (export / "answers.jsonl").read_text().splitlines()]
    assert [a["lang"] for a in answers] == ["id", "th"] and all(a["quant"] == "q4_k_m" for a in answers)
    assert all(a["tokens"] > 0 and a["finish_reason"] in ("stop", "length") for a in answers)
    # the same file through the backend again, in a fresh context: the same greedy tokens (deterministic)
    from sealion.engine import ChatRequest, SamplingParams
    from sealion.engine.llamacpp import LlamaCppEngine

    held = json.loads((run / "data" / "heldout.jsonl").read_text().splitlines()[0])
    eng = LlamaCppEngine(export / "model.q4_k_m.gguf", n_ctx=512, n_threads=2)
    again = eng.chat([ChatRequest(held["messages"][:1], SamplingParams(max_new_tokens=8, temperature=0))])[0]
    eng.close()
    assert again.token_ids == answers[0]["token_ids"]
    report = report_data(run)
    assert set(report["export"]["files"]) == {"q8_0", "q4_k_m"} and report["export"]["answers"]["n"] == 2
    assert "On-device export (GGUF)" in (run / "report.html").read_text()


def test_a_student_llama_cpp_cannot_run_is_refused_before_any_work(tmp_path, tiny_gemma3_dir):
    from sealion.errors import ConfigError

    data = tiny_recipe(tiny_gemma3_dir)
    data["export"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"student.num_layers: the export stage cannot write this student, "
                                          r"layers \[0, 2, 5\]"):
        run_recipe(write_recipe(tmp_path / "bad.yaml", data), tmp_path / "run", log=lambda m: None)
    assert not (tmp_path / "run").exists()


def actions(statuses) -> dict[str, str]:
    return {s.name: s.action for s in statuses}


def test_full_run_writes_every_stage(tiny_run):
    run = tiny_run["run"]
    assert actions(tiny_run["statuses"]) == {**{s: "run" for s in RUN_STAGES}, "export": "disabled"}
    for s in RUN_STAGES:
        done = read_done(run / s)
        assert done is not None and done["seconds"] >= 0 and done["bytes"] > 0, s
    # resolved config saved with the run, defaults filled in
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["distill"]["divergence"] == "fkl" and resolved["student"]["num_layers"] == 3
    # data: teacher responses, split per language
    train = [json.loads(x) for x in (run / "data" / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (run / "data" / "heldout.jsonl").read_text().splitlines()]
    assert len(train) == 6 and len(held) == 4
    assert all(r["messages"][1]["role"] == "assistant" and r["messages"][1]["content"] for r in train)
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    # student: 3 of the teacher's 6 layers
    student = json.loads((run / "student" / "model.json").read_text())
    assert student["layers"] == [0, 2, 5]
    assert json.loads((Path(student["path"]) / "config.json").read_text())["num_hidden_layers"] == 3
    # capture, distilled and merged models exist where the markers say
    assert json.loads((run / "capture" / "topk" / "manifest.json").read_text())["complete"] is True
    assert read_done(run / "distill")["summary"]["steps"] == 4
    for stage in ("distill", "merge"):
        path = Path(json.loads((run / stage / "model.json").read_text())["path"])
        assert (path / "config.json").is_file() and list(path.glob("*.safetensors")), stage


def test_finished_distillation_keeps_only_its_final_weights(tiny_run):
    """save_every=2 of 4 steps wrote checkpoints (weights + optimizer state) while training; once the stage is
    done they are gone, and nothing in the run holds an optimizer state."""
    run = tiny_run["run"]
    model = run / "distill" / "model"
    assert not (model / "checkpoints").exists()
    assert not [p for p in run.rglob("*") if "optimizer" in p.name or p.name.startswith("random_states")]
    assert (model / "train_summary.json").is_file() and (model / "metrics.jsonl").is_file()


def test_seahelm_without_data_is_reported_as_not_run(tiny_run):
    from sealion.recipe.summary import summary_lines

    note = "seahelm-mini not run: no SEA-HELM data (pass --data DIR"
    assert read_done(tiny_run["run"] / "evaluate")["summary"]["skipped"][0].startswith(note)
    assert any(line.startswith(f"Not run: {note}") for line in summary_lines(tiny_run["run"]))
    html = (tiny_run["run"] / "report.html").read_text()
    assert html.index("Not run in this report") < html.index("<h2>")  # said at the top, before any section
    assert note in html and report_data(tiny_run["run"])["skipped"][0].startswith(note)


def test_report_data_covers_four_models_and_languages(tiny_run):
    data = report_data(tiny_run["run"])
    held = data["heldout"]
    assert set(held) == set(MODELS)
    for m in MODELS:
        assert set(held[m]) == {"id", "th", "all"}
        for lang in ("id", "th", "all"):
            for metric in ("kl", "top1", "ppl"):
                e = held[m][lang][metric]
                assert e["lo"] <= e["value"] + 1e-9 and e["value"] <= e["hi"] + 1e-9, (m, lang, metric)
    assert held["teacher"]["all"]["kl"]["value"] == 0 and held["teacher"]["all"]["top1"]["value"] == 1
    assert held["student-init"]["all"]["kl"]["value"] > 0
    assert data["curves"]["loss"] and [s for s, _ in data["curves"]["loss"]] == [1, 2, 3, 4]
    assert set(data["verdict"]) == {"student", "merged"}
    # the turn-end check: every model but the teacher answered the 4 held-out prompts; the counts are the rows'
    turn_end = data["turn_end"]
    rows = json.loads((tiny_run["run"] / "evaluate" / "turn_end.json").read_text())["models"]
    assert set(turn_end) == {"student-init", "student", "merged"}
    for m, r in turn_end.items():
        assert r["n"] == 4 and r["turn_end_id"] == 106
        assert r["ended"] == sum(1 for x in rows[m]["rows"] if x["stop_token_id"] == 106)
        assert r["length"] == sum(1 for x in rows[m]["rows"] if x["finish_reason"] == "length")
    html = (tiny_run["run"] / "report.html").read_text()
    assert html.count('class="chart"') >= 4 and "student before" in html
    assert not re.search(r'(src|href)="https?://', html)  # nothing fetched from the network


def test_terminal_summary_shows_teacher_text_and_heldout_kl(tiny_run):
    from sealion.recipe.summary import summary_lines

    lines = summary_lines(tiny_run["run"])
    text = "\n".join(lines)
    # one sample per language, the teacher's response beside it
    assert sum(1 for x in lines if x.lstrip().startswith("[id]")) == 1
    assert sum(1 for x in lines if x.lstrip().startswith("[th]")) == 1
    assert sum(1 for x in lines if x.lstrip().startswith("->")) == 2
    # KL rows for the three non-teacher models, with the values report.json holds
    held = report_data(tiny_run["run"])["heldout"]
    row = next(x for x in lines if x.split()[:1] == ["student-init"])
    assert [float(v) for v in row.split()[1:]] == pytest.approx(
        [held["student-init"][lang]["kl"]["value"] for lang in ("id", "th", "all")], abs=1e-3)
    assert "merged: closer to the teacher" in text and "teacher " not in row
    assert summary_lines(tiny_run["root"]) == []  # not a run directory: nothing to say


def test_second_run_skips_everything(tiny_run):
    before = {s: read_done(tiny_run["run"] / s)["run_id"] for s in RUN_STAGES}
    statuses = run_recipe(tiny_run["recipe"], tiny_run["run"], log=lambda m: None)
    assert actions(statuses) == {**{s: "skip" for s in RUN_STAGES}, "export": "disabled"}
    assert {s: read_done(tiny_run["run"] / s)["run_id"] for s in RUN_STAGES} == before


def test_changed_merge_reruns_merge_and_after_only(tiny_run):
    run = tiny_run["root"] / "run-merge"
    shutil.copytree(tiny_run["run"], run)
    recipe = write_recipe(tiny_run["root"] / "tiny-merge.yaml", tiny_recipe(tiny_run["teacher"], weight=0.9))
    statuses = run_recipe(recipe, run, log=lambda m: None)
    assert actions(statuses) == {"data": "skip", "student": "skip", "capture": "skip", "distill": "skip",
                                 "merge": "run", "export": "disabled", "evaluate": "run", "report": "run"}
    old, new = report_data(tiny_run["run"])["heldout"], report_data(run)["heldout"]
    assert new["student"] == old["student"]  # untouched models score the same
    assert new["merged"]["all"]["kl"]["value"] != old["merged"]["all"]["kl"]["value"]
    # --from reruns from the named stage; --only just one stage
    st = actions(run_recipe(recipe, run, from_stage="report", log=lambda m: None))
    assert st["report"] == "run" and st["evaluate"] == "skip"
    st = actions(run_recipe(recipe, run, only="report", log=lambda m: None))
    assert st == {"data": "skip", "student": "skip", "capture": "skip", "distill": "skip", "merge": "skip",
                  "export": "disabled", "evaluate": "skip", "report": "run"}


def test_killed_run_resumes_to_the_same_report_data(tiny_run):
    """Kill -9 the CLI during distillation, run it again: the final numbers equal an uninterrupted run's."""
    run = tiny_run["root"] / "run-kill"
    run.mkdir()
    for s in ("data", "student", "capture"):  # same recipe, so these are current; the kill lands in distill
        shutil.copytree(tiny_run["run"] / s, run / s)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sealion", "recipe", str(tiny_run["recipe"]), "--out", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpts = run / "distill" / "model" / "checkpoints"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpts.is_dir() and any(ckpts.glob("step-*")):
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "distill" / DONE).exists(), "the run finished before it could be killed"
    assert (run / "distill" / ".started.json").exists()
    statuses = run_recipe(tiny_run["recipe"], run, log=lambda m: None)
    acts = actions(statuses)
    assert acts["capture"] == "skip" and acts["distill"] == "resume" and acts["report"] == "run"
    a, b = report_data(tiny_run["run"]), report_data(run)
    assert _close(a["heldout"], b["heldout"])
    assert [s for s, _ in b["curves"]["loss"]] == [1, 2, 3, 4]
    assert b["verdict"] == a["verdict"]


def test_distill_killed_after_training_finished_is_not_trained_again(tiny_run, monkeypatch):
    """A kill between the trainer's last write and the stage's DONE marker: the rerun resumes the stage, keeps
    the finished weights (no second training) and still removes the leftover checkpoints."""
    import sealion.recipe.integrate as integrate
    from sealion.io import write_json
    from sealion.recipe.runner import STARTED

    run = tiny_run["root"] / "run-late-kill"
    shutil.copytree(tiny_run["run"], run)
    done = read_done(run / "distill")
    (run / "distill" / DONE).unlink()
    write_json(run / "distill" / STARTED, {"key": done["key"], "started": 0})
    leftover = run / "distill" / "model" / "checkpoints" / "step-00000002"
    leftover.mkdir(parents=True)
    (leftover / "optimizer.bin").write_bytes(b"x" * 1000)

    def no_training(*a, **k):
        raise AssertionError("the finished student was trained again")

    monkeypatch.setattr(integrate, "train_student", no_training)
    acts = actions(run_recipe(tiny_run["recipe"], run, log=lambda m: None))
    assert acts["capture"] == "skip" and acts["distill"] == "resume" and acts["report"] == "run"
    assert not leftover.parent.exists() and read_done(run / "distill")["summary"]["steps"] == 4
    assert report_data(run)["heldout"]["student"] == report_data(tiny_run["run"])["heldout"]["student"]


def _close(a, b, rel=1e-4) -> bool:
    if isinstance(a, dict):
        assert set(a) == set(b)
        return all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, float):
        assert b == pytest.approx(a, rel=rel, abs=1e-6)
        return True
    assert a == b
    return True


# ----------------------------------------------------------------------------------------- the browser check
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    report = tiny_run["run"] / "report.html"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
           "--v=0", "--virtual-time-budget=3000", "--dump-dom", report.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = res.stdout
    assert res.returncode == 0, res.stderr[-2000:]
    # the inline script ran (it counts the charts into <body data-rendered>): JavaScript executed without error
    m = re.search(r'<body[^>]*data-rendered="(\d+)"', dom)
    assert m is not None, dom[:500]
    assert int(m.group(1)) >= 4
    assert dom.count("<svg") >= 4 and 'class="bar"' in dom and 'class="errbar"' in dom and 'class="line"' in dom
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r"error|uncaught|failed", line, re.I)]
    assert not errors, errors
    # no request left the machine: every resource is inline
    assert "net::ERR" not in res.stderr


# Measured by the browser's own layout: every text inside its chart, no text over another, the legend clear of
# every bar, error bar and line, each legend swatch painted and matched by a drawn mark of its colour, no line
# hidden under an identical one. The result is written into the page as JSON for --dump-dom to carry out.
GEOMETRY_JS = """
<script>
(function () {
  const problems = [];
  const box = (el) => el.getBoundingClientRect();
  const meets = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 &&
                          b.top < a.bottom - 0.5;
  const charts = Array.from(document.querySelectorAll("svg.chart"));
  charts.forEach((svg, n) => {
    const name = n + " " + (svg.querySelector("title") || {}).textContent;
    const frame = box(svg);
    const texts = Array.from(svg.querySelectorAll(":scope > text"));
    texts.forEach((t) => {
      const b = box(t);
      if (b.width <= 0 || b.left < frame.left - 0.5 || b.right > frame.right + 0.5 || b.top < frame.top - 0.5 ||
          b.bottom > frame.bottom + 0.5) problems.push(name + ": text outside the chart: " + t.textContent);
    });
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++)
      if (meets(box(texts[i]), box(texts[j])))
        problems.push(name + ": texts overlap: " + texts[i].textContent + " / " + texts[j].textContent);
    const legend = Array.from(svg.querySelectorAll(".swatch, text.legend")).map(box);
    const marks = Array.from(svg.querySelectorAll(".bar, .errbar, .line"));
    marks.forEach((m) => {
      const b = box(m);
      if (b.top < frame.top - 0.5 || b.bottom > frame.bottom + 0.5)
        problems.push(name + ": a " + m.getAttribute("class") + " leaves the chart");
    });
    marks.forEach((m) => legend.forEach((l) => {
      if (meets(l, box(m))) problems.push(name + ": a " + m.getAttribute("class") + " covers the legend");
    }));
    const colours = new Set(marks.map((m) => getComputedStyle(m)[m.classList.contains("line") ? "stroke" : "fill"]));
    svg.querySelectorAll(".swatch").forEach((sw) => {
      const st = getComputedStyle(sw), b = box(sw);
      const paint = sw.tagName === "line" ? st.stroke : st.fill;
      const thick = sw.tagName === "line" ? parseFloat(st.strokeWidth) : Math.min(b.width, b.height);
      if (paint === "none" || !(thick > 0) || !(b.width > 0)) problems.push(name + ": a legend swatch is not painted");
      if (!colours.has(paint)) problems.push(name + ": no mark drawn in the legend colour " + paint);
    });
    const paths = Array.from(svg.querySelectorAll(".line")).map((l) => l.getAttribute("d"));
    if (new Set(paths).size !== paths.length) problems.push(name + ": a line is drawn over an identical one");
    if (svg.querySelectorAll(".swatch").length !== svg.querySelectorAll("text.legend").length)
      problems.push(name + ": legend entries without a swatch");
  });
  const out = document.createElement("pre");
  out.id = "geometry";
  out.textContent = JSON.stringify({charts: charts.length, problems: problems});
  document.body.appendChild(out);
})();
</script>
"""


def _browser_geometry(exe: str, html: str, tmp_path: Path, name: str) -> dict:
    """Lay the page out in headless Chromium with the geometry check appended; also leaves NAME.png (a
    screenshot, for a person to look at) in tmp_path."""
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", GEOMETRY_JS + "</body>"), encoding="utf-8")
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,2400"]
    res = subprocess.run([*base, "--virtual-time-budget=3000", "--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="geometry">(.*?)</pre>', res.stdout, re.S)
    assert m is not None, res.stdout[-1000:]
    subprocess.run([*base, f"--screenshot={tmp_path / (name + '.png')}", page.resolve().as_uri()],
                   capture_output=True, timeout=120)
    from html import unescape

    return json.loads(unescape(m.group(1)))


def test_report_charts_lay_out_cleanly_in_chromium(tiny_run, tmp_path):
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    geo = _browser_geometry(exe, (tiny_run["run"] / "report.html").read_text(encoding="utf-8"), tmp_path, "report")
    assert geo["charts"] >= 4 and geo["problems"] == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_hard_charts_lay_out_cleanly_in_chromium(tmp_path):
    """What broke before: a log axis up to a million (long tick labels beside the axis title), values just above
    a round tick (bars rose over the legend), identical loss and KD curves (one legend entry with no visible
    line), a curve lying on 0, and more legend entries than fit on one row."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from sealion.charts import grouped_bars, line_chart

    names = ["teacher", "student before", "student after (distilled)", "merged", "merged (slerp, t=0.3)",
             "another long model name"]
    ppl = {n: [(2.1e5 * (i + 1), 1.8e5 * (i + 1), 9.9e5), (3e1, 2e1, 4e1)] for i, n in enumerate(names)}
    ce = {"ce": [(1, 12.24), (2, 12.46), (3, 12.62)]}
    loss = {"loss": [(1, 4.2e-5), (2, 3.7e-5)], "kd": [(1, 4.2e-5), (2, 3.7e-5)], "top1_agree": [(1, 0.0), (2, 0.0)]}
    charts = [grouped_bars("perplexity", ["id", "all"], ppl, ylabel="perplexity (log scale; lower is better)",
                           log_y=True),
              grouped_bars("above the last round tick", ["id"], {"a long series name": [(12.4, 12.1, 12.6)],
                                                                  "another long series name": [(2.0, 1.0, 3.0)]},
                           ylabel="score"),
              line_chart("cross-entropy", ce, xlabel="step", ylabel="nats / token"),
              line_chart("loss", loss, xlabel="step", ylabel="nats / token")]
    html = "<!DOCTYPE html><html><body>" + "".join(charts) + "</body></html>"
    geo = _browser_geometry(exe, html, tmp_path, "hard")
    assert geo == {"charts": 4, "problems": []}
    assert "loss = kd" in charts[3]  # the two identical curves are one line with one legend entry


@pytest.mark.shared
def test_seahelm_suite_runs_with_data_flag(tiny_run, shared_dir):
    """--data adds the recipe's SEA-HELM suite to the evaluate stage (real sealion.evaluate on real files)."""
    data = shared_dir / "data" / "seahelm-v1"
    if not data.is_dir():
        pytest.skip("../shared/data/seahelm-v1 is absent")
    run = tiny_run["root"] / "run-seahelm"
    shutil.copytree(tiny_run["run"], run)
    recipe = tiny_recipe(tiny_run["teacher"])
    recipe["evaluate"]["seahelm"] = {"suite": "seahelm-mini", "runs": 1, "limit": 1, "languages": ["id"],
                                     "models": ["student"]}
    path = write_recipe(tiny_run["root"] / "tiny-seahelm.yaml", recipe)
    statuses = run_recipe(path, run, data_dir=str(data), log=lambda m: None)
    acts = actions(statuses)
    assert acts["distill"] == "skip" and acts["evaluate"] == "run"
    sea = json.loads((run / "evaluate" / "seahelm.json").read_text())
    assert set(sea) == {"student"} and "id" in sea["student"]["languages"]
    assert (run / "evaluate" / "seahelm" / "student" / "results.json").is_file()
    html = (run / "report.html").read_text()
    assert "SEA-HELM" in html
    # without --data the same recipe skips SEA-HELM, which is a different evaluate config: it would rerun
    _, plan, _ = plan_recipe(path, run)
    assert actions(plan)["evaluate"] == "run" and actions(plan)["distill"] == "skip"
