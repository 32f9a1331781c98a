"""Peak memory of ``predict`` on the 20-mass chain, next to the size of what it returns.

The model is ``AttNSSolver`` with its default network (width 1024, float32), fitted with
``max_epochs=0`` on a handful of trajectories: the cost of a rollout does not depend on
training. Each configuration runs in a fresh subprocess, which

1. fits the model, draws the initial conditions and warms ``predict`` up on 2 of them,
2. resets the kernel's high-water mark of its resident memory to the current resident
   memory (``echo 5 > /proc/self/clear_refs``, Linux 4.0+) and reads both,
3. calls ``predict`` once and reads the high-water mark again
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

"peak" is the high-water mark after the call minus the resident memory before it: what
``predict`` itself added at its worst moment, output included. (tracemalloc does not
see torch's allocations, hence the kernel's counters.) Where the high-water mark cannot
be reset, the figure is marked "<=" when the call stayed below an earlier high-water mark.

Configurations, all on ``--n-trajectories`` initial conditions in batches of
``--batch-size`` (the estimator's default, 4096):

* ``final_only=True`` at ``--n-steps`` and at half of it (peak should not move),
* ``save_every=100`` at ``--n-steps``,
* ``save_every=1`` at ``--n-steps``.

The target is 10,000 trajectories x 10,000 steps. ``save_every=1`` at that size returns
10,000 x 10,001 x 40 float64 = 32 GB, more than many machines hold; and a CPU rollout of
1e8 trajectory-steps of a width-1024 network takes hours. So the script first measures
the throughput on one batch, prints the time the requested size would take, and stops if
that exceeds ``--max-minutes`` (0: no limit), naming an ``--n-steps`` that fits.

Peak memory does not grow with the number of steps: each step frees one batch's
tensors and allocates them again, and only the output grows, by ``n_state x 8`` bytes
per saved state and trajectory. The working set ("peak - returned array") does vary
from run to run with the state of the C allocator (glibc keeps some freed memory and
returns some), so the extrapolation to the target uses the largest working set measured
in the run: "up to largest working set + output size".

Run from the repository root::

    python benchmarks/bench_predict_memory.py                        # the target size
    python benchmarks/bench_predict_memory.py --n-steps 400 --threads 1  # feasible on 2 cores
    python benchmarks/bench_predict_memory.py --device cuda          # host and GPU memory
"""

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sklearn_attns import AttNSSolver, make_trajectories  # noqa: E402
from sklearn_attns.systems import SpringMass  # noqa: E402

TARGET_TRAJECTORIES = TARGET_STEPS = 10_000
N_MASSES = 20
N_STATE = 2 * N_MASSES


def _gb(n_bytes):
    return f"{n_bytes / 1e9:.3g} GB" if abs(n_bytes) >= 1e9 else f"{n_bytes / 1e6:.4g} MB"


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_max_rss():
    """Reset the high-water mark to the current resident memory; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _solver(device, batch_size):
    system = SpringMass(n_masses=N_MASSES)
    X = make_trajectories(system, n_trajectories=8, t_end=2.0, dt=0.2, fine_dt=1e-3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AttNSSolver(system=system, dt=0.2, max_epochs=0, batch_size=batch_size, device=device,
                             random_state=0).fit(X)
    return system, solver


def n_saved(n_steps, save_every, final_only):
    return 1 if final_only else n_steps // save_every + 1


def output_bytes(n_trajectories, n_steps, save_every, final_only):
    return n_trajectories * n_saved(n_steps, save_every, final_only) * N_STATE * 8


def child(config):
    """Measure one configuration in this (fresh) process; print one JSON line."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    system, solver = _solver(config["device"], config["batch_size"])
    u0 = system.sample_initial_conditions(config["n_trajectories"], random_state=1)
    solver.predict(u0[:2], n_steps=2, save_every=1)  # warm-up: lazy initialisation of torch
    cuda = solver.device_.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()
    reset = _reset_max_rss()
    rss_before, max_before = _rss_bytes(), _max_rss_bytes()
    start = time.perf_counter()
    paths = solver.predict(u0, n_steps=config["n_steps"], save_every=config["save_every"],
                           final_only=config["final_only"])
    elapsed = time.perf_counter() - start
    max_after = _max_rss_bytes()
    result = dict(config, elapsed=elapsed, reset=reset, rss_before=rss_before, max_before=max_before,
                  max_after=max_after, shape=list(paths.shape), nbytes=int(paths.nbytes),
                  finite=bool(np.isfinite(paths).all()))
    if cuda:
        result["gpu_peak"] = torch.cuda.max_memory_allocated() - gpu_before
    print(json.dumps(result))


def measure(config):
    command = [sys.executable, __file__, "--child", json.dumps(config)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"configuration {config} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(device, batch_size, n_steps=5, repeats=2):
    """Trajectory-steps per second of one full batch: best of ``repeats``, after a warm-up."""
    system, solver = _solver(device, batch_size)
    u0 = system.sample_initial_conditions(batch_size, random_state=1)
    solver.predict(u0, n_steps=1, final_only=True)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        solver.predict(u0, n_steps=n_steps, final_only=True)
        best = min(best, time.perf_counter() - start)
    return batch_size * n_steps / best


def machine(device):
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    threads = torch.get_num_threads()
    text = (f"{model}, {os.cpu_count()} cores, {memory / 2**30:.1f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__} "
            f"({threads} thread{'s' if threads > 1 else ''}), device {device}")
    if torch.device(device).type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text + f"; load average before the run {os.getloadavg()[0]:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-trajectories", type=int, default=TARGET_TRAJECTORIES)
    parser.add_argument("--n-steps", type=int, default=TARGET_STEPS)
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="predict's batch (the estimator's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, one per core); on a busy machine 1 "
                             "avoids OpenMP threads waiting on each other")
    parser.add_argument("--max-minutes", type=float, default=15.0,
                        help="stop before measuring if the estimated run time exceeds this (0: no limit)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"command: python {shlex.join(sys.argv)}")
    print(f"machine: {machine(args.device)}")
    n, steps, batch = args.n_trajectories, args.n_steps, args.batch_size
    configs = [
        {"final_only": True, "save_every": 1, "n_steps": max(1, steps // 2)},
        {"final_only": True, "save_every": 1, "n_steps": steps},
        {"final_only": False, "save_every": 100, "n_steps": steps},
        {"final_only": False, "save_every": 1, "n_steps": steps},
    ]
    rate = throughput(args.device, batch)
    work = sum(n * c["n_steps"] for c in configs)
    target_hours = TARGET_TRAJECTORIES * TARGET_STEPS / rate / 3600
    print(f"throughput on one batch of {batch}: {rate:.4g} trajectory-steps/s; this run: {work:.3g} "
          f"trajectory-steps, about {_duration(work / rate)}; the target ({TARGET_TRAJECTORIES:,} x "
          f"{TARGET_STEPS:,}) takes about {target_hours:.2f} h per configuration")
    if args.max_minutes and work / rate > 60 * args.max_minutes:
        fit = int(60 * args.max_minutes * rate / (n * 3.5))  # the four configurations: 3.5 x n_steps
        print(f"stopping: over --max-minutes={args.max_minutes:g}; --n-steps {fit} would fit "
              "(peak memory does not depend on n_steps, see the module docstring)")
        return 1
    largest = max(output_bytes(n, c["n_steps"], c["save_every"], c["final_only"]) for c in configs)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    if largest > 0.8 * available:
        print(f"stopping: the largest output ({_gb(largest)}) would not fit in the {_gb(available)} "
              "available; pass fewer --n-trajectories or --n-steps")
        return 1

    print(f"\n{n:,} trajectories, batch_size={batch}; peak = high-water mark during predict minus resident "
          "memory before it; working set = peak - returned array")
    header = (f"{'configuration':<34}{'returned shape':>22}{'array':>12}{'peak':>12}{'working set':>13}"
              f"{'time':>9}")
    print(header + ("  gpu peak" if torch.device(args.device).type == "cuda" else ""))
    overheads, run_rate = [], rate
    for c in configs:
        r = measure(dict(c, n_trajectories=n, batch_size=batch, device=args.device, threads=args.threads))
        peak = r["max_after"] - r["rss_before"]
        # Without a reset, a call that stayed under an earlier high-water mark gives only a bound.
        exact = r["reset"] or r["max_after"] > r["max_before"]
        overhead = peak - r["nbytes"]
        overheads.append(overhead)
        if c["final_only"] and c["n_steps"] == steps:
            run_rate = n * steps / r["elapsed"]  # the whole run's rate, all batches
        name = (f"final_only=True, n_steps={c['n_steps']}" if c["final_only"]
                else f"save_every={c['save_every']}, n_steps={c['n_steps']}")
        shown_peak = ("" if exact else "<=") + _gb(peak)
        line = (f"{name:<34}{tuple(r['shape'])!s:>22}{_gb(r['nbytes']):>12}{shown_peak:>12}"
                f"{_gb(overhead):>13}{r['elapsed']:>8.1f}s")
        if "gpu_peak" in r:
            line += f"  {_gb(r['gpu_peak'])}"
        print(line + ("" if r["finite"] else "  (non-finite values!)"))

    working = max(overheads)
    print(f"\nextrapolated to the target, {TARGET_TRAJECTORIES:,} trajectories x {TARGET_STEPS:,} steps: "
          f"peak up to {_gb(working)} (the largest working set above) + output size; time at this run's "
          f"{run_rate:.4g} trajectory-steps/s of final_only:")
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for final_only, save_every in ((True, 1), (False, 100), (False, 1)):
        size = output_bytes(TARGET_TRAJECTORIES, TARGET_STEPS, save_every, final_only)
        peak = working + size
        name = "final_only=True" if final_only else f"save_every={save_every}"
        shape = ((TARGET_TRAJECTORIES, N_STATE) if final_only
                 else (TARGET_TRAJECTORIES, n_saved(TARGET_STEPS, save_every, final_only), N_STATE))
        fits = "" if peak < total else f"  (more than this machine's {_gb(total)}: does not fit)"
        print(f"  {name:<18} returns {shape!s:<22} {_gb(size):>10}, peak up to {_gb(peak)}, "
              f"about {TARGET_TRAJECTORIES * TARGET_STEPS / run_rate / 3600:.2g} h{fits}")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
