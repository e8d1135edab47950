"""Claims: a job owns its configuration while it trains, so two launches of one sweep never train it twice.

Before training, a job creates `<results_dir>/.claims/<config_hash>.json` (host, pid, start time, a token)
exclusively: the file is written under a temporary name and hard-linked into place, and a link fails when the
name exists, so exactly one of several launchers gets it, and no reader ever sees a half-written claim (link
is atomic on local filesystems and on NFSv3+). While the job runs, a thread touches the file every
`stale_s / 4` seconds: its mtime is the heartbeat (a thread, not the training loop, so that long set-ups and
long epochs keep it fresh). Another launcher skips a configuration whose holder is live (or waits for it); a
claim whose holder is gone is taken over: on the same host, when its pid no longer exists (a SIGKILL, a
crash), on any host when its heartbeat is older than `stale_s` (a lost node). The claim is removed when the
job ends, however it ends.

Limits: hosts must agree on the time within `stale_s` (NTP), since a heartbeat stamped by one host (or its
file server) is judged by another host's clock; a holder stopped (SIGSTOP, a frozen node) for longer than
`stale_s` is taken over and the two then both train: keep `stale_s` well above any pause you expect.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ConfigError

CLAIMS_DIR = ".claims"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its file says, and how old its heartbeat is."""

    host: str
    pid: int
    since: str
    token: str
    heartbeat_age_s: float
    run_dir: str | None = None  # where the holder's job writes (claims written before it knew: None)

    def __str__(self) -> str:
        if self.pid < 0:
            return "a damaged claim file (a job killed while writing it)"
        return f"pid {self.pid} on {self.host} since {self.since}"

    def is_gone(self, stale_s: float) -> bool:
        """Dead (same host, pid gone) or silent for longer than `stale_s` (any host)."""
        if self.heartbeat_age_s > stale_s:
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)


class Claim:
    """A claim this process holds: a heartbeat thread keeps it live until `release()` (or the with-block's
    end) removes it."""

    def __init__(self, path: Path, token: str, stale_s: float, taken_over: Holder | None = None):
        self.path, self.token = path, token
        self.taken_over = taken_over  # the gone holder whose claim this one replaced, if any
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeat, args=(max(stale_s / 4, 0.05),), name="claim-heartbeat", daemon=True
        )
        self._beat.start()

    def _heartbeat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            if self._mine():
                with contextlib.suppress(OSError):  # gone meanwhile (a takeover): nothing to keep alive
                    os.utime(self.path)

    def _mine(self) -> bool:
        holder = _read_holder(self.path)
        return holder is not None and holder.token == self.token

    def release(self) -> None:
        self._stop.set()
        self._beat.join()
        if self._mine():  # never remove a claim another launcher took over meanwhile
            self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder too once no job holds a claim: nothing left behind
            self.path.parent.rmdir()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_path(results_dir: Path, digest: str) -> Path:
    return Path(results_dir) / CLAIMS_DIR / f"{digest}.json"


def try_claim(
    results_dir: Path, digest: str, *, stale_s: float, run_dir: Path | None = None
) -> Claim | Holder:
    """Claim `digest` under `results_dir` for a job writing into `run_dir`: the Claim when this process now
    holds it (with the gone holder it replaced, whose leftovers the caller clears), else the live Holder."""
    path = claim_path(results_dir, digest)
    token = secrets.token_hex(8)
    mine = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token": token,
        "run_dir": None if run_dir is None else str(Path(run_dir).resolve()),
    }
    taken_over = None
    while True:  # a claim released or taken over while we look at it: look again
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if _create_exclusive(path, json.dumps(mine) + "\n"):
                return Claim(path, token, stale_s, taken_over)
        except FileNotFoundError:
            continue  # the last holder removed the empty folder between our mkdir and our write
        holder = _read_holder(path)
        if holder is None:
            continue  # released between our attempt and our look
        if not holder.is_gone(stale_s):
            return holder
        log.warning("taking over the claim of %s (%s)", holder, _why_gone(holder, stale_s))
        _set_aside(path, holder)
        _remove_stale_temporaries(path.parent, stale_s)
        taken_over = holder


def acquire(
    results_dir: Path,
    digest: str,
    *,
    stale_s: float,
    wait: bool,
    poll_s: float = 2.0,
    run_dir: Path | None = None,
) -> Claim | Holder:
    """`try_claim`; with `wait`, poll until the holder releases its claim or is gone, then hold it."""
    if not stale_s > 0:  # 0 would judge every live holder gone: two launches would both train
        raise ConfigError(f"claim_stale_s={stale_s:g} must be positive; the default is 300 (seconds)")
    outcome = try_claim(results_dir, digest, stale_s=stale_s, run_dir=run_dir)
    if isinstance(outcome, Holder) and wait:
        log.info("waiting: claimed by %s", outcome)
        while isinstance(outcome, Holder):
            time.sleep(poll_s)  # another process's job: there is nothing to hand-shake with but its file
            outcome = try_claim(results_dir, digest, stale_s=stale_s, run_dir=run_dir)
    return outcome


def _remove_stale_temporaries(folder: Path, stale_s: float) -> None:
    """Temporary claim files (`.<hash>.json.<token>.tmp`, `.gone`) older than `stale_s`: a job killed
    between writing one and linking or removing it left it; nobody else will."""
    now = time.time()
    for leftover in [*folder.glob(".*.tmp"), *folder.glob(".*.gone")]:
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > stale_s:
                leftover.unlink()
                log.warning("removed %s, left by a killed job", leftover)


def _create_exclusive(path: Path, text: str) -> bool:
    """Write `text` to `path` only if nothing is there; the file appears whole or not at all."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _set_aside(path: Path, gone: Holder) -> None:
    """Remove the claim of a holder that is gone, and only that one: move it aside (one mover wins), and
    if what we moved is a newer claim (another launcher took over between our look and our move), put it
    back."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.gone")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    moved = _read_holder(aside)
    if moved is not None and moved.token != gone.token:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def _read_holder(path: Path) -> Holder | None:
    try:
        age = time.time() - path.stat().st_mtime
        data = json.loads(path.read_text(encoding="utf-8"))
        run_dir = data.get("run_dir")
        return Holder(
            str(data["host"]),
            int(data["pid"]),
            str(data["since"]),
            str(data["token"]),
            age,
            None if run_dir is None else str(run_dir),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Not a claim we wrote (claims appear whole): treat it as one whose holder is long gone.
        return Holder("?", -1, "?", "?", float("inf"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _why_gone(holder: Holder, stale_s: float) -> str:
    if holder.heartbeat_age_s > stale_s:
        return f"no heartbeat for {holder.heartbeat_age_s:.0f} s > claim_stale_s={stale_s:g}"
    return "that process no longer exists"
