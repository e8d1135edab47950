"""What produced a record: package versions, the harness's git commit and, under SLURM, the job that ran it.

Never the hostname, except the SLURM node name (to find a job's node and logs)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy
import torch

import harness
from harness.record_parts import ProvenanceFields


def versions() -> dict[str, str | None]:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "harness": harness.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn is not None else None,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


# A sweep reads git once and hands the answer to its jobs in this variable ("<commit> <0|1>", or "none"):
# the launching process and every worker or scheduler task it starts inherit its environment.
GIT_STATE_ENV = "HARNESS_GIT_STATE"


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the harness runs from; (None, None) for an installed copy. Inside a
    sweep, what its launcher read once (`GIT_STATE_ENV`): two git subprocesses per job were a tiny job's
    largest cost."""
    pinned = os.environ.get(GIT_STATE_ENV, "").split()
    if pinned == ["none"]:
        return None, None
    if len(pinned) == 2 and pinned[1] in ("0", "1", "?"):
        return pinned[0], None if pinned[1] == "?" else pinned[1] == "1"
    return read_git_state()


def pinned_git_state() -> str:
    """The value of GIT_STATE_ENV that hands this checkout's state to a sweep's jobs."""
    commit, dirty = read_git_state()
    return "none" if commit is None else f"{commit} {'?' if dirty is None else int(dirty)}"


def read_git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) as git says now (two subprocesses)."""
    source = Path(harness.__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def slurm_job() -> dict[str, Any]:
    """The SLURM job running this process, from the variables slurmd sets; all null outside SLURM.

    For an array task the job id is the array's (SLURM_ARRAY_JOB_ID), as squeue, sacct and submitit name
    the task <job>_<task>; SLURM_JOB_ID would be the task's own number."""
    env = os.environ
    task = env.get("SLURM_ARRAY_TASK_ID")
    return {
        "slurm_job_id": env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID"),
        "slurm_array_task_id": int(task) if task else None,
        "slurm_node": env.get("SLURMD_NODENAME"),
    }


def provenance() -> ProvenanceFields:
    """The record's provenance part: versions, the harness's git state and the SLURM job, now."""
    commit, dirty = git_state()
    return ProvenanceFields(versions=versions(), git_commit=commit, git_dirty=dirty, **slurm_job())
