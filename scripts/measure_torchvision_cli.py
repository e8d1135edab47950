"""Run `harness measure` with default settings on torchvision's classifiers, one process each, and log how
each one ended.

    python scripts/measure_torchvision_cli.py [OUT_CSV] [--models resnet50,vit_h_14]

Each model is given as a user would: `model._target_=torchvision.models.NAME`, at its default weights'
evaluation crop (`input_shape=[1,3,R,R]`; a ViT is also built at that size, `+model.image_size=R`),
`output=json`, nothing else. A row per model (written and flushed as it ends, so a long run can be
watched and an interrupted one keeps what it did; the file is started afresh): exit status, wall
seconds, the batch sizes timed and skipped, and the last line of stderr when it failed. Exit status 1
when any model did not exit 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

FIELDS = ("model", "resolution", "exit_code", "wall_s", "macs", "timed", "skipped", "load_1min", "error")


def crop(name: str) -> int:
    import torchvision

    return int(torchvision.models.get_model_weights(name)["DEFAULT"].transforms().crop_size[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/measure/torchvision_cli.csv")
    parser.add_argument("--models", help="comma-separated names (default: every classifier)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="a `harness measure` override added to every command (repeatable; default: none, as a user)",
    )
    args = parser.parse_args(argv)
    import torchvision

    names = (
        args.models.split(",") if args.models else torchvision.models.list_models(module=torchvision.models)
    )
    harness = shutil.which("harness") or os.path.join(os.path.dirname(sys.executable), "harness")
    failed = 0
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for i, name in enumerate(names, start=1):
            size = crop(name)
            command = [
                harness,
                "measure",
                f"model._target_=torchvision.models.{name}",
                f"input_shape=[1,3,{size},{size}]",
                "output=json",
                *args.override,
            ]
            if name.startswith("vit_"):
                command.append(f"+model.image_size={size}")
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True)
            row = {
                "model": name,
                "resolution": size,
                "exit_code": proc.returncode,
                "wall_s": round(time.perf_counter() - start, 1),
                "load_1min": round(os.getloadavg()[0], 2),
                "error": "",
            }
            try:  # a run that exited 0 but printed something else is a failure of its own, not the script's
                result = json.loads(proc.stdout) if proc.returncode == 0 else None
            except json.JSONDecodeError as exc:
                result, proc.stderr = None, f"output=json printed no JSON ({exc})"
            if result is not None:
                latency = result["latency"]
                row["macs"] = int(result["macs"])
                row["timed"] = " ".join(str(r["batch_size"]) for r in latency if r.get("latency_s"))
                row["skipped"] = " ".join(str(r["batch_size"]) for r in latency if r.get("skipped"))
            else:
                failed += 1
                row["exit_code"] = proc.returncode or 1
                row["error"] = (proc.stderr.strip().splitlines() or [""])[-1]
            writer.writerow(row)
            handle.flush()
            print(f"[{i}/{len(names)}] {name}: exit {proc.returncode} in {row['wall_s']} s", flush=True)
    print(f"{len(names) - failed}/{len(names)} exited 0; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
