"""The runner's skip / rerun / resume rules, on small stages that read and write real files."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from sealion.errors import ConfigError, SealionError
from sealion.recipe.runner import DONE, STARTED, Runner, Stage


class Pipeline:
    """Three stages: a reads an input file, b doubles a's numbers (resumable, one file per item), c sums b."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.input = tmp / "input.txt"
        self.input.write_text("1 2 3 4\n")
        self.calls: list[str] = []
        self.cfg = {"a": {"x": 1}, "b": {"factor": 2}, "c": {}}
        self.interrupt_b_after: int | None = None

    def stage_a(self, ctx):
        self.calls.append("a")
        nums = [int(x) for x in self.input.read_text().split()]
        (ctx.dir / "nums.json").write_text(json.dumps(nums))
        return {"n": len(nums)}

    def stage_b(self, ctx):
        self.calls.append("b")
        nums = json.loads((ctx.dep("a") / "nums.json").read_text())
        done_now = 0
        for i, n in enumerate(nums):
            part = ctx.dir / f"part-{i}.json"
            if part.exists():  # resumable: finished items are kept
                continue
            if self.interrupt_b_after is not None and done_now >= self.interrupt_b_after:
                raise KeyboardInterrupt
            part.write_text(json.dumps(n * self.cfg["b"]["factor"]))
            done_now += 1
        (ctx.dir / "computed.json").write_text(json.dumps(done_now))
        return {"computed": done_now}

    def stage_c(self, ctx):
        self.calls.append("c")
        total = sum(json.loads(p.read_text()) for p in sorted(ctx.dep("b").glob("part-*.json")))
        (ctx.dir / "total.json").write_text(json.dumps(total))
        return {"total": total}

    def runner(self, run_dir: Path | None = None) -> Runner:
        return Runner([
            Stage("a", self.stage_a, (), self.cfg["a"], {"input": str(self.input)}, outputs=("nums.json",)),
            Stage("b", self.stage_b, ("a",), dict(self.cfg["b"])),
            Stage("c", self.stage_c, ("b",), self.cfg["c"], outputs=("total.json",)),
        ], run_dir or self.tmp / "run", log=lambda m: None)

    def total(self) -> int:
        return json.loads((self.tmp / "run" / "c" / "total.json").read_text())


@pytest.fixture
def pipe(tmp_path) -> Pipeline:
    return Pipeline(tmp_path)


def actions(statuses) -> dict[str, str]:
    return {s.name: s.action for s in statuses}


def test_first_run_runs_all_then_everything_is_skipped(pipe):
    assert actions(pipe.runner().run()) == {"a": "run", "b": "run", "c": "run"}
    assert pipe.total() == 20
    done = json.loads((pipe.tmp / "run" / "b" / DONE).read_text())
    assert done["summary"] == {"computed": 4} and done["bytes"] > 0 and len(done["key"]) == 64
    pipe.calls.clear()
    assert actions(pipe.runner().run()) == {"a": "skip", "b": "skip", "c": "skip"}
    assert pipe.calls == []


def test_changed_config_reruns_that_stage_and_everything_after(pipe):
    pipe.runner().run()
    pipe.calls.clear()
    pipe.cfg["b"]["factor"] = 3
    plan = pipe.runner().plan()
    assert actions(plan) == {"a": "skip", "b": "run", "c": "run"}
    assert plan[1].reason == "config or inputs changed"
    pipe.runner().run()
    assert pipe.calls == ["b", "c"]
    assert pipe.total() == 30
    # the old parts were cleared, not reused with the new config
    assert json.loads((pipe.tmp / "run" / "b" / "computed.json").read_text()) == 4


def test_changed_input_file_reruns_from_the_stage_that_reads_it(pipe):
    pipe.runner().run()
    pipe.calls.clear()
    pipe.input.write_text("1 2 3 4 5\n")
    pipe.runner().run()
    assert pipe.calls == ["a", "b", "c"]
    assert pipe.total() == 30


def test_last_stage_change_leaves_earlier_ones(pipe):
    pipe.runner().run()
    pipe.calls.clear()
    pipe.cfg["c"] = {"style": "new"}
    pipe.runner().run()
    assert pipe.calls == ["c"]


def test_from_forces_that_stage_and_after(pipe):
    pipe.runner().run()
    pipe.calls.clear()
    assert actions(pipe.runner().run(from_stage="b")) == {"a": "skip", "b": "run", "c": "run"}
    assert pipe.calls == ["b", "c"]


def test_only_runs_one_stage_and_needs_its_upstream(pipe):
    with pytest.raises(ConfigError, match="stage 'a' before it is not done"):
        pipe.runner().run(only="b")
    assert not (pipe.tmp / "run" / "b").exists()  # refused before any work
    pipe.runner().run()
    pipe.calls.clear()
    assert actions(pipe.runner().run(only="b")) == {"a": "skip", "b": "run", "c": "not-selected"}
    assert pipe.calls == ["b"]
    # b reran (new run id), so c is stale now and the next full run redoes it
    pipe.calls.clear()
    pipe.runner().run()
    assert pipe.calls == ["c"]


def test_unknown_stage_flags_are_refused(pipe):
    with pytest.raises(ConfigError, match="--from: unknown stage 'zz'"):
        pipe.runner().run(from_stage="zz")
    with pytest.raises(ConfigError, match="cannot be combined"):
        pipe.runner().plan(from_stage="a", only="b")


def test_interrupted_stage_resumes_from_its_partial_files(pipe):
    pipe.interrupt_b_after = 2
    with pytest.raises(KeyboardInterrupt):
        pipe.runner().run()
    bdir = pipe.tmp / "run" / "b"
    assert not (bdir / DONE).exists() and (bdir / STARTED).exists()
    assert sorted(p.name for p in bdir.glob("part-*")) == ["part-0.json", "part-1.json"]
    assert actions(pipe.runner().plan())["b"] == "resume"
    pipe.interrupt_b_after = None
    pipe.calls.clear()
    statuses = pipe.runner().run()
    assert actions(statuses) == {"a": "skip", "b": "resume", "c": "run"}
    assert json.loads((bdir / "computed.json").read_text()) == 2  # only the missing half was computed
    assert pipe.total() == 20
    assert json.loads((bdir / DONE).read_text())["seconds"] >= 0


def test_interrupted_stage_with_changed_config_starts_clean(pipe):
    pipe.interrupt_b_after = 2
    with pytest.raises(KeyboardInterrupt):
        pipe.runner().run()
    pipe.interrupt_b_after = None
    pipe.cfg["b"]["factor"] = 10
    pipe.runner().run()
    assert json.loads((pipe.tmp / "run" / "b" / "computed.json").read_text()) == 4
    assert pipe.total() == 100


def test_missing_output_makes_a_done_stage_rerun(pipe):
    pipe.runner().run()
    (pipe.tmp / "run" / "c" / "total.json").unlink()
    pipe.calls.clear()
    pipe.runner().run()
    assert pipe.calls == ["c"]


def test_stage_that_forgets_its_output_fails(pipe, tmp_path):
    r = Runner([Stage("x", lambda ctx: None, outputs=("out.bin",))], tmp_path / "r2", log=lambda m: None)
    with pytest.raises(SealionError, match="without writing out.bin"):
        r.run()
    assert not (tmp_path / "r2" / "x" / DONE).exists()


def test_disabled_stage_is_skipped_and_dependents_still_run(tmp_path):
    seen = []
    r = Runner([Stage("a", lambda ctx: seen.append("a")),
                Stage("b", lambda ctx: seen.append("b"), ("a",), enabled=False),
                Stage("c", lambda ctx: seen.append("c"), ("a", "b"))], tmp_path / "r", log=lambda m: None)
    assert actions(r.run()) == {"a": "run", "b": "disabled", "c": "run"}
    assert seen == ["a", "c"]


def test_dependency_order_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="does not come before it"):
        Runner([Stage("b", lambda ctx: None, ("a",)), Stage("a", lambda ctx: None)], tmp_path)


def test_a_second_runner_on_the_same_directory_is_refused(pipe):
    entered, release = threading.Event(), threading.Event()

    def slow(ctx):
        entered.set()
        release.wait(10)

    first = Runner([Stage("s", slow)], pipe.tmp / "run", log=lambda m: None)
    t = threading.Thread(target=first.run)
    t.start()
    try:
        assert entered.wait(10)
        with pytest.raises(SealionError, match="another `sealion recipe` is running"):
            Runner([Stage("s", slow)], pipe.tmp / "run", log=lambda m: None).run()
    finally:
        release.set()
        t.join()
