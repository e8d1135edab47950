"""How many CPU threads a run gets, and what else the machine did while it trained.

torch's default is one intra-op thread per core of the machine. Beside other work that is the worst choice:
its threads spin waiting for each other while the other work holds the cores, and on 2 cores a step that
takes 1 s alone took 24 s. The policy (`trainer.cpu_threads=auto`): the cores this process may use (its CPU
affinity and cgroup quota, and under a batch scheduler the CPUs it allocated to the task, which tasks packed
onto one node may otherwise all take), shared among the jobs of the sweep that run at once, less the cores
that other processes keep busy when the run starts (counted from the kernel's runnable tasks at that
instant: no waiting); an explicit number is taken as given, and so is a user's OMP_NUM_THREADS as a
ceiling.

What happens later is not foreseeable, so it is measured: the machine's busy time from /proc/stat over the
training, less this process's own CPU time, is the load of everything else. A run whose threads and the
others' load together ask for more cores than it may use is `contended`, and its times are not a measurement
of the computation alone.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.errors import ConfigError
from harness.record_parts import ContentionFields

# Demand over supply, in cores, from which a run counts as contended: its threads plus other processes' load
# exceed the cores it may use by this much. Others' load is what they achieved, capped by the machine (three
# CPU-bound processes on 2 cores each get 2/3 of a core), so an oversubscribed run shows a small excess: a
# one-thread run beside two spinning processes on 2 cores, 1 + 1.33 - 2 = 0.33. Checked against
# scripts/bench_contention.py's measurements (results/bench/contention_cpu.csv).
OVERSUBSCRIBED_CORES = 0.25
STAT = Path("/proc/stat")


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (containers, SLURM)
    and by the CPUs a batch scheduler allocated to this task (`scheduler_cpus`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota:
        cores = max(1, min(cores, math.floor(quota)))
    allocated = scheduler_cpus(os.environ)
    return max(1, min(cores, allocated)) if allocated else cores


def scheduler_cpus(env: Mapping[str, str]) -> int | None:
    """CPUs SLURM allocated to this task: SLURM_CPUS_PER_TASK, else the job's CPUs on this node
    (SLURM_CPUS_ON_NODE) shared by its tasks there (SLURM_TASKS_PER_NODE, e.g. "2(x3),1", at SLURM_NODEID);
    None outside SLURM. Without a task/affinity plugin or cgroups, SLURM does not bind a task to its CPUs:
    affinity then shows the whole node, and tasks packed onto it oversubscribe it unless they read this."""
    per_task = env.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit() and int(per_task) > 0:
        return int(per_task)
    on_node = env.get("SLURM_CPUS_ON_NODE", "")
    if not (on_node.isdigit() and int(on_node) > 0):
        return None
    tasks = _tasks_on_node(env.get("SLURM_TASKS_PER_NODE", ""), env.get("SLURM_NODEID", "0"))
    return max(1, int(on_node) // tasks)


def _tasks_on_node(tasks_per_node: str, node_id: str) -> int:
    """This node's entry of SLURM_TASKS_PER_NODE ("2(x3),1": 2 tasks on each of 3 nodes, then 1); 1 when
    it cannot be read."""
    counts: list[int] = []
    for part in tasks_per_node.split(","):
        count, _, repeat = part.partition("(x")
        if not count.isdigit():
            return 1
        counts += [int(count)] * (int(repeat.rstrip(")")) if repeat.rstrip(")").isdigit() else 1)
    index = int(node_id) if node_id.isdigit() else 0
    return max(1, counts[index]) if index < len(counts) else 1


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup's CPU quota in cores (v2 cpu.max, else v1 cfs quota/period), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        cfs_quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        cfs_period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if cfs_quota <= 0 or cfs_period <= 0 else cfs_quota / cfs_period


def jobs_at_once(n_jobs: int | None) -> int:
    """How many jobs of a sweep run at the same time on this machine, from a launcher's n_jobs (joblib's
    convention: -1 all cores, -2 all but one; None: one job at a time)."""
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    return max(1, n_jobs if n_jobs > 0 else usable_cores() + 1 + n_jobs)


def resolve_cpu_threads(setting, jobs: int = 1, others_busy_cores: float | None = None) -> tuple[int, str]:
    """(threads, why) for `trainer.cpu_threads`: a positive integer as given, or `auto` (see the module);
    for auto, other processes' load is sampled now unless `others_busy_cores` gives it."""
    if str(setting).strip().lower() != "auto":
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ConfigError(
                f"trainer.cpu_threads={setting} is not a thread count; use auto or a positive integer"
            )
        return setting, "trainer.cpu_threads"
    cores = usable_cores()
    share = max(1, cores // max(1, jobs))
    why = f"auto: {cores} usable cores / {jobs} job(s) at once"
    if scheduler_cpus(os.environ) == cores:
        why = f"auto: {cores} cores allocated by SLURM / {jobs} job(s) at once"
    ceiling = os.environ.get("OMP_NUM_THREADS", "")
    if ceiling.isdigit() and 0 < int(ceiling) < share:
        share, why = int(ceiling), why + f", at most OMP_NUM_THREADS={ceiling}"
    if share > 1:  # only then can other processes' load lower it: not worth a sample otherwise
        others = runnable_others() if others_busy_cores is None else others_busy_cores
        busy = math.floor(others + 0.5)  # whole cores other processes hold, rounded
        if busy:
            share = max(1, min(share, cores - busy))
            why += f", {others:.1f} cores busy with other processes"
    return share, why


def apply_cpu_threads(threads: int) -> None:
    """Set torch's intra-op and inter-op pools before any work."""
    torch.set_num_threads(threads)
    # Settable once per process, before inter-op work: a worker reused by a launcher keeps its first value.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


@dataclass(frozen=True)
class MachineSample:
    """The machine's busy CPU seconds (all cores, /proc/stat) and this process's CPU seconds, at one time."""

    wall_s: float
    machine_busy_s: float | None  # None where /proc/stat cannot be read (not Linux)
    own_cpu_s: float


def sample_machine() -> MachineSample:
    busy = None
    try:
        # "cpu  user nice system idle iowait irq softirq steal ...": busy is all but idle and iowait.
        fields = [int(v) for v in STAT.read_text().splitlines()[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return MachineSample(time.perf_counter(), busy, time.process_time())


def others_busy_cores(start: MachineSample, end: MachineSample) -> float | None:
    """Cores kept busy by other processes between two samples (machine busy time less this process's)."""
    wall = end.wall_s - start.wall_s
    if start.machine_busy_s is None or end.machine_busy_s is None or wall <= 0:
        return None
    others = (end.machine_busy_s - start.machine_busy_s) - (end.own_cpu_s - start.own_cpu_s)
    return max(0.0, others / wall)


def runnable_others() -> float:
    """Tasks of other processes that are running or waiting for a core right now: the kernel's count of
    runnable tasks (/proc/stat procs_running) less this process's own running threads (a previous job's
    pool may still spin). One instant, read without waiting (a sampling window cost every job 0.1 s); a
    burst can make it one too high, which costs a thread, never a contended run passing as clean: what
    others did during training is measured (contention_fields). 0 where it cannot be read."""
    try:
        line = next(x for x in STAT.read_text().splitlines() if x.startswith("procs_running"))
        running = int(line.split()[1])
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return float(max(0, running - _own_running_threads()))


def _own_running_threads() -> int:
    """This process's threads in state R (this one, reading, among them)."""
    running = 0
    for task in Path("/proc/self/task").glob("*/stat"):
        with contextlib.suppress(OSError, IndexError):
            # "pid (comm) S ...": the state follows the command name, which may itself hold spaces
            running += task.read_text().rsplit(")", 1)[1].split()[0] == "R"
    return max(1, running)


def busy_now(window_s: float = 0.1) -> float:
    """Cores other processes keep busy right now, sampled over `window_s` (0 where it cannot be read)."""
    start = sample_machine()
    time.sleep(window_s)
    return others_busy_cores(start, sample_machine()) or 0.0


def contention_fields(
    start: MachineSample,
    end: MachineSample,
    *,
    threads: int,
    train_time_s: float | None,
    train_cpu_s: float | None,
    gpu_shared: bool | None,
) -> ContentionFields:
    """The record's evidence of contention over the training (see the module), with `contended` and why."""
    others = others_busy_cores(start, end)
    utilization = None
    if train_cpu_s is not None and train_time_s:
        utilization = train_cpu_s / (train_time_s * threads)
    cores = usable_cores()
    reasons = []
    if others is not None and threads + others - cores >= OVERSUBSCRIBED_CORES:
        reasons.append(
            f"other processes kept {others:.1f} of {cores} cores busy beside this run's {threads} thread(s)"
        )
    if gpu_shared:
        reasons.append("other processes used the GPU during the run")
    return ContentionFields(
        cpu_time_s=train_cpu_s,
        cpu_utilization=utilization,
        machine_load_others=others,
        usable_cores=cores,
        contended=None if others is None and gpu_shared is None else bool(reasons),
        contended_reason="; ".join(reasons) or None,
    )
