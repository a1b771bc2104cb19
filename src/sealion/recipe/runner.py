"""Sequencing stages: skip what is done and current, rerun what changed (and everything after it), resume what
was interrupted.

Each stage writes into `RUN/<stage>/`. Two markers live there:
- `.started.json` (the stage's key) is written before the stage runs. If a run is killed, the next run finds it
  with the same key and lets the stage resume from its own partial files; with a different key the directory is
  cleared first, since partial files from another config must not be mixed in.
- `DONE.json` (key, a fresh `run_id`, seconds, output bytes, the stage's summary) is written when it finishes.

A stage's key hashes its config, the identity of the external files it reads and the `run_id` of every stage it
depends on, so a stage that reran makes every stage after it rerun, and an unchanged one leaves them alone.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, SealionError
from ..io import write_json
from .fingerprint import digest, dir_size, path_identity

DONE = "DONE.json"
STARTED = ".started.json"


@dataclass
class StageContext:
    name: str
    dir: Path  # this stage's output directory
    run_dir: Path
    deps: dict[str, Path]  # dependency name -> its output directory
    log: Callable[[str], None]

    def dep(self, name: str) -> Path:
        return self.deps[name]


@dataclass
class Stage:
    name: str
    run: Callable[[StageContext], dict[str, Any] | None]
    deps: tuple[str, ...] = ()
    config: Any = None  # what this stage's behaviour depends on (hashed)
    inputs: dict[str, str] = field(default_factory=dict)  # label -> external path whose content is hashed
    enabled: bool = True
    describe: str = ""  # one line for --plan
    outputs: tuple[str, ...] = ()  # files that must exist for DONE to count (relative to the stage dir)


@dataclass
class StageStatus:
    name: str
    action: str  # run | resume | skip | disabled | not-selected
    reason: str
    key: str | None = None


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (a stage's cost, independent of machine load)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def read_done(stage_dir: Path) -> dict | None:
    p = stage_dir / DONE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


class Runner:
    """Runs `stages` (already in dependency order) under `run_dir`."""

    def __init__(self, stages: list[Stage], run_dir: str | Path, *, log: Callable[[str], None] | None = None):
        self.stages = stages
        self.by_name = {s.name: s for s in stages}
        self.run_dir = Path(run_dir)
        self.log = log or (lambda msg: print(f"[recipe] {msg}", file=sys.stderr, flush=True))
        seen: set[str] = set()
        for s in stages:
            for d in s.deps:
                if d not in seen:
                    raise ConfigError(f"stage {s.name!r} depends on {d!r}, which does not come before it")
            seen.add(s.name)

    # --- keys -------------------------------------------------------------------------------------------
    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def _input_ids(self, stage: Stage) -> dict[str, str]:
        return {label: path_identity(p) for label, p in sorted(stage.inputs.items())}

    def key(self, stage: Stage, dep_run_ids: dict[str, str]) -> str:
        return digest({"stage": stage.name, "config": stage.config, "inputs": self._input_ids(stage),
                       "deps": dep_run_ids})

    def _is_current(self, stage: Stage, key: str) -> bool:
        done = read_done(self.stage_dir(stage.name))
        if not done or done.get("key") != key:
            return False
        return all((self.stage_dir(stage.name) / o).exists() for o in stage.outputs)

    # --- planning ---------------------------------------------------------------------------------------
    def _upstream(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.by_name[name].deps)
        while todo:
            d = todo.pop()
            if d not in out:
                out.add(d)
                todo.extend(self.by_name[d].deps)
        return out

    def plan(self, *, from_stage: str | None = None, only: str | None = None) -> list[StageStatus]:
        """What a run would do, without doing it. Keys of stages after one that reruns are unknown (None)."""
        for flag, value in (("--from", from_stage), ("--only", only)):
            if value is not None and value not in self.by_name:
                raise ConfigError(f"{flag}: unknown stage {value!r}; stages: {', '.join(self.by_name)}")
        if from_stage and only:
            raise ConfigError("--from and --only cannot be combined")
        if only and not self.by_name[only].enabled:
            raise ConfigError(f"--only: stage {only!r} is disabled in this recipe")
        order = [s.name for s in self.stages]
        forced_from = order.index(from_stage) if from_stage else None
        run_ids: dict[str, str | None] = {}
        out: list[StageStatus] = []
        upstream_of_only = self._upstream(only) if only else set()
        for i, s in enumerate(self.stages):
            if not s.enabled:
                run_ids[s.name] = "disabled"
                out.append(StageStatus(s.name, "disabled", "disabled in the recipe"))
                continue
            deps = {d: run_ids.get(d) for d in s.deps}
            unknown = [d for d, r in deps.items() if r is None]
            key = None if unknown else self.key(s, deps)  # type: ignore[arg-type]
            done = read_done(self.stage_dir(s.name))
            current = key is not None and self._is_current(s, key)
            if only is not None and s.name != only:
                if s.name in upstream_of_only:
                    if not current:
                        raise ConfigError(f"--only {only}: stage {s.name!r} before it is not done with the current "
                                          f"recipe; run without --only (or with --from {s.name}) first")
                    run_ids[s.name] = done["run_id"]  # type: ignore[index]
                    out.append(StageStatus(s.name, "skip", "done and current (needed by --only)", key))
                else:
                    run_ids[s.name] = done["run_id"] if current else "stale"  # type: ignore[index]
                    out.append(StageStatus(s.name, "not-selected", f"--only {only}", key))
                continue
            forced = (forced_from is not None and i >= forced_from) or only == s.name
            if current and not forced:
                run_ids[s.name] = done["run_id"]  # type: ignore[index]
                out.append(StageStatus(s.name, "skip", "done and current", key))
                continue
            run_ids[s.name] = None  # reruns: a new run_id, so what follows reruns too
            started = self._read_started(s.name)
            if forced:
                reason = f"--from {from_stage}" if forced_from is not None else f"--only {only}"
                out.append(StageStatus(s.name, "run", reason, key))
            elif unknown:
                out.append(StageStatus(s.name, "run", f"{', '.join(unknown)} reruns", key))
            elif started and started.get("key") == key:
                out.append(StageStatus(s.name, "resume", "interrupted; resumes from its partial files", key))
            elif done:
                out.append(StageStatus(s.name, "run", "config or inputs changed", key))
            else:
                out.append(StageStatus(s.name, "run", "not run yet", key))
        return out

    def _read_started(self, name: str) -> dict | None:
        p = self.stage_dir(name) / STARTED
        try:
            return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
        except (OSError, json.JSONDecodeError):
            return None

    # --- running ----------------------------------------------------------------------------------------
    def run(self, *, from_stage: str | None = None, only: str | None = None) -> list[StageStatus]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.run_dir / ".lock", "w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SealionError(f"{self.run_dir}: another `sealion recipe` is running in this directory") from None
        try:
            return self._run_locked(from_stage=from_stage, only=only)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()

    def _run_locked(self, *, from_stage: str | None, only: str | None) -> list[StageStatus]:
        plan = self.plan(from_stage=from_stage, only=only)  # validates flags and --only's upstream first
        run_ids: dict[str, str] = {}
        results: list[StageStatus] = []
        for status, s in zip(plan, self.stages):
            sdir = self.stage_dir(s.name)
            if status.action in ("disabled",):
                run_ids[s.name] = "disabled"
                results.append(status)
                continue
            if status.action in ("skip", "not-selected"):
                done = read_done(sdir)
                run_ids[s.name] = done["run_id"] if done else "stale"
                if status.action == "skip":
                    self.log(f"{s.name}: skip ({status.reason})")
                results.append(status)
                continue
            deps = {d: run_ids[d] for d in s.deps}
            key = self.key(s, deps)
            started = self._read_started(s.name)
            forced = status.reason.startswith(("--from", "--only"))
            resume = (not forced) and started is not None and started.get("key") == key and read_done(sdir) is None
            if not resume and sdir.exists():
                shutil.rmtree(sdir)  # stale or forced: start clean
            sdir.mkdir(parents=True, exist_ok=True)
            if not resume:
                write_json(sdir / STARTED, {"key": key, "started": time.time()})
            self.log(f"{s.name}: {'resume' if resume else 'run'} ({status.reason})")
            t0, c0 = time.time(), _cpu_seconds()
            prior = float(started.get("seconds_before", 0.0)) if resume and started else 0.0
            ctx = StageContext(s.name, sdir, self.run_dir, {d: self.stage_dir(d) for d in s.deps}, self.log)
            try:
                summary = s.run(ctx) or {}
            except BaseException:
                # keep the partial files for a resume; remember the time spent so far
                write_json(sdir / STARTED, {"key": key, "started": t0, "seconds_before": prior + time.time() - t0})
                raise
            seconds = prior + time.time() - t0
            missing = [o for o in s.outputs if not (sdir / o).exists()]
            if missing:
                raise SealionError(f"stage {s.name}: finished without writing {', '.join(missing)}")
            run_id = uuid.uuid4().hex
            write_json(sdir / DONE, {"stage": s.name, "key": key, "run_id": run_id, "seconds": round(seconds, 3),
                                     "cpu_seconds": round(_cpu_seconds() - c0, 3), "bytes": dir_size(sdir), "finished": time.time(), "summary": summary})
            (sdir / STARTED).unlink(missing_ok=True)
            run_ids[s.name] = run_id
            self.log(f"{s.name}: done in {seconds:.1f}s")
            results.append(StageStatus(s.name, "resume" if resume else "run", status.reason, key))
        return results
