"""Site store reliability figures: SIGKILLed writers and concurrent writers.

    python benchmarks/store_stress.py --output benchmarks/results/store_stress.json

Kills: a writer process saves versions in a loop (weights the size of the default network plus an
Adam state) and logs, fsync'ed, each version whose save returned; it is SIGKILLed at a random
moment. The store must then open at the last acknowledged version or a later complete one, with
weights identical by content hash, and no version may be damaged. Concurrency: two processes
save versions at once into the same profile, each learning on from its own last version, as two
clinicians' sessions do; every acknowledged version must be there, intact, with the version its
writer learned from as its parent, and the newest version of each writer's line must survive the
strictest retention.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import random
import re
import shlex
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import torch

from InteractiveAdaptLib.store.site_store import SiteStore

BASE = "0" * 64
SITE, PROFILE = "Stress site", "Grey matter"
# About the default network (0.84 M parameters): 3.4 MB of weights, twice that of Adam moments.
SHAPES = {
    "encoder.weight": (256, 256, 3, 3),
    "decoder.weight": (128, 256, 3, 3),
    "head.weight": (2, 16, 1, 1),
}


_RANDOM: dict[str, torch.Tensor] = {}


def numbered_state(number: int) -> dict[str, torch.Tensor]:
    """Weights that only `number` determines, so any version's content can be checked (cheap to make)."""
    if not _RANDOM:
        g = torch.Generator().manual_seed(0)
        _RANDOM.update({name: torch.randn(shape, generator=g) for name, shape in SHAPES.items()})
    return {name: t + number for name, t in _RANDOM.items()}


def optimizer_state(number: int, state: dict[str, torch.Tensor]) -> dict:
    moments = {
        i: {"step": torch.tensor(float(number)), "exp_avg": t * 0.1, "exp_avg_sq": t * t}
        for i, t in enumerate(state.values())
    }
    return {"state": moments, "param_groups": [{"lr": 1e-4, "params": list(moments)}]}


def content_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def writer(root: str, log_path: str, first: int, count: int, keep_last: int) -> None:
    """Save versions first, first+1, ...; after each save returns, log it (fsync'ed) with its timings.

    Each save learns from the writer's previous one (the first from the version current when it
    started), as a session does. A line is 'version number content-hash seconds-in-save
    seconds-since-the-previous-line parent-recorded learned-from other-leaves'.
    """
    profile = SiteStore(root, keep_last=keep_last).profile(SITE, PROFILE)
    learned_from = getattr(profile.current(), "version", 0)
    with open(log_path, "a") as log:
        previous = time.perf_counter()
        for number in range(first, first + count):
            state = numbered_state(number)
            optimizer, digest = optimizer_state(number, state), content_hash(state)
            started = time.perf_counter()
            info = profile.save(
                state, optimizer, base_sha256=BASE, cases_learned=number, clicks_learned=0, note=str(number),
                parent=learned_from,
            )  # fmt: skip
            now = time.perf_counter()
            log.write(
                f"{info.version} {number} {digest} {now - started:.4f} {now - previous:.4f} "
                f"{info.parent} {learned_from} {len(info.other_leaves)}\n"
            )
            log.flush()
            os.fsync(log.fileno())
            previous, learned_from = now, info.version


def acknowledged(log_path: Path) -> list[tuple[int, int, str]]:
    """(version, number, content hash) of the saves that returned; a line the kill tore is not one."""
    return [(int(p[0]), int(p[1]), p[2]) for p in _log_lines(log_path)]


def _log_lines(log_path: Path) -> list[list[str]]:
    text = log_path.read_text() if log_path.exists() else ""
    return [line.split() for line in text.split("\n")[:-1]]


def kill_phase(folder: Path, last_acknowledged: int) -> str:
    """What the kill interrupted, judged from the files it left (before the store repairs them)."""
    names = os.listdir(folder)
    if any(n.endswith(".tmp") for n in names):
        return "inside an atomic file write"
    try:
        listed = json.loads((folder / "manifest.json").read_text())["last_version"]
    except (OSError, ValueError, KeyError):
        return "left a torn manifest (writes are not atomic)"
    if any(int(m[1]) > listed for n in names if (m := re.match(r"^v(\d+)\.pt$", n))):
        return "after the weights file, before the manifest"
    if listed > last_acknowledged:
        return "after the manifest, before the save returned or was logged"
    return "outside file writes (serialising, hashing, or the writer's own loop)"


def check_after_kill(root: Path, log_path: Path) -> tuple[bool, str, str]:
    """(ok, where the store opened relative to the last ack, problem)."""
    last_version, last_number, last_hash = acknowledged(log_path)[-1]
    profile = SiteStore(root, keep_last=4).profile(SITE, PROFILE)
    loaded = profile.load(BASE)
    if loaded is None or loaded.warnings:
        return False, "", f"opened at {loaded and loaded.info.version}: {loaded and loaded.warnings}"
    if any(v.damaged for v in profile.versions()):
        return False, "", "a version is damaged"
    got = content_hash(loaded.model_state)
    if loaded.info.version < last_version or got != content_hash(numbered_state(int(loaded.info.note))):
        return False, "", f"opened at version {loaded.info.version}, last acknowledged {last_version}"
    if loaded.info.version == last_version and got != last_hash:
        return False, "", f"version {last_version} does not hold the acknowledged weights"
    acked = profile.load(BASE, version=last_version)
    if content_hash(acked.model_state) != last_hash:
        return False, "", f"acknowledged version {last_version} changed"
    return True, "last acknowledged" if loaded.info.version == last_version else "later complete", ""


def run_kills(ctx: multiprocessing.context.BaseContext, work: Path, kills: int, rng: random.Random) -> dict:
    root, log_path = work / "kills", work / "kills.log"
    folder = SiteStore(root).profile(SITE, PROFILE).path
    recovered, where, phases, problems, delays = 0, Counter(), Counter(), [], []
    for kill in range(kills):
        before = len(acknowledged(log_path))
        process = ctx.Process(target=writer, args=(str(root), str(log_path), 10_000 * (kill + 1), 10**6, 4))
        process.start()
        deadline = time.monotonic() + 120
        while len(acknowledged(log_path)) == before:  # at least one save per writer, then strike
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"writer {kill} stopped before saving")
            time.sleep(0.002)
        delays.append(rng.uniform(0, 0.25))
        time.sleep(delays[-1])
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        phases[kill_phase(folder, acknowledged(log_path)[-1][0])] += 1
        ok, at, problem = check_after_kill(root, log_path)
        recovered += ok
        where[at] += ok
        if problem:
            problems.append(f"kill {kill}: {problem}")
    return {
        "kills": kills,
        "recovered": recovered,
        "recovered_at_last_acknowledged": where["last acknowledged"],
        "recovered_at_later_complete_version": where["later complete"],
        "kill_moments": dict(phases),
        "kill_delay_after_an_acknowledged_save_s": [0.0, 0.25],
        "acknowledged_saves": len(acknowledged(log_path)),
        "writer_time_inside_save_fraction": round(
            sum(float(p[3]) for p in _log_lines(log_path)) / sum(float(p[4]) for p in _log_lines(log_path)), 3
        ),
        "ms_per_save_one_writer_median": round(
            1000 * statistics.median(float(p[3]) for p in _log_lines(log_path)), 1
        ),
        "problems": problems,
    }


def run_concurrent(ctx: multiprocessing.context.BaseContext, work: Path, per_process: int) -> dict:
    root, logs = work / "concurrent", [work / "a.log", work / "b.log"]
    started = time.monotonic()
    processes = [
        ctx.Process(target=writer, args=(str(root), str(log), first, per_process, 10 * per_process))
        for log, first in zip(logs, (1, 1_000_001), strict=True)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.monotonic() - started
    acks = [ack for log in logs for ack in acknowledged(log)]
    profile = SiteStore(root).profile(SITE, PROFILE)
    listed = {v.version: v for v in profile.versions()}
    lost = [
        v
        for v, _, h in acks
        if v not in listed or content_hash(profile.load(BASE, version=v).model_state) != h
    ]
    # The parent rule: each version records the one its writer learned from, its own previous save.
    wrong_parents = 0
    for log in logs:
        lines = _log_lines(log)
        for before, line in zip([None, *lines], lines, strict=False):
            expected = int(line[6]) if before is None else int(before[0])
            saved = listed.get(int(line[0]))
            wrong_parents += int(line[5]) != expected or saved is None or saved.parent != expected
    newest = [int(_log_lines(log)[-1][0]) for log in logs if _log_lines(log)]
    SiteStore(root, keep_last=0).profile(SITE, PROFILE).prune()  # the strictest retention
    after_prune = {v.version for v in profile.versions()}
    return {
        "concurrent_processes": len(processes),
        "concurrent_saves": len(acks),
        "concurrent_saves_expected": per_process * len(processes),
        "writers_exit_codes": [p.exitcode for p in processes],
        "lost_versions": len(lost) + per_process * len(processes) - len(acks),
        "duplicate_versions": len(acks) - len({v for v, _, _ in acks}),
        "versions_with_a_wrong_parent": wrong_parents,
        "saves_that_found_the_other_writer_first": sum(
            int(line[7]) > 0 for log in logs for line in _log_lines(log)
        ),
        "newest_of_each_writer_kept_by_retention_keep_last_0": sum(v in after_prune for v in newest),
        "concurrent_seconds": round(seconds, 2),
        "ms_per_save_with_two_writers": round(1000 * seconds / max(len(acks), 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/store_stress.json"))
    parser.add_argument("--kills", type=int, default=120)
    parser.add_argument("--per-process", type=int, default=50, help="versions each concurrent writer saves")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "InteractiveAdaptLib.store.site_store"])  # each writer forks in ms
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="store-stress-") as tmp:
        kills = run_kills(ctx, Path(tmp), args.kills, random.Random(args.seed))
        concurrent = run_concurrent(ctx, Path(tmp), args.per_process)
    state = numbered_state(0)
    result = {
        "command": "python benchmarks/store_stress.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        **kills,
        **concurrent,
        "weights_bytes": sum(t.numel() * t.element_size() for t in state.values()),
        "optimizer_bytes_approx": 2 * sum(t.numel() * t.element_size() for t in state.values()),
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = (
        result["recovered"] == result["kills"]
        and result["lost_versions"] == 0
        and not result["duplicate_versions"]
        and not result["versions_with_a_wrong_parent"]
        and result["newest_of_each_writer_kept_by_retention_keep_last_0"] == result["concurrent_processes"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
