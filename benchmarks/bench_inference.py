"""Rollout throughput of the default AttNS network on the 20-mass chain.

Prints trajectory-steps per second of ``predict`` beside the rate that bare torch matrix
products of the network's shapes reach in the same run: per step, the two products
``(n, 40) @ (40, 1024)`` and ``(n, 1024) @ (1024, 40)`` with their biases (``addmm``), in
the network's dtype (float32). The fraction is rollout rate / bare rate (target: 70%).
``predict`` is timed returning every state (a float64 array of n x (n_steps + 1) x 40,
whose copy to the host is part of the cost) and returning the final state only. On the
CPU, ``predict`` rolls out cache-sized blocks of rows (``corrections.cpu_block_rows``); the
reference multiplies the whole batch at once. Timings are the fastest of ``--repeats``
interleaved rounds.

Run: python benchmarks/bench_inference.py [--device cpu|cuda] [--n-trajectories N] [--profile]
"""

import argparse
import os
import platform
import sys
import time
import warnings

import torch

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.systems import SpringMass


def fastest_per_round(functions, rounds):
    """Time each function once per round, the functions interleaved so that the machine's
    slow spells hit them alike; return each one's fastest time."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-trajectories", type=int, default=4096)
    parser.add_argument("--n-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--profile", action="store_true",
                        help="also print torch.profiler's table of one compiled final-state predict")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}"
          f" ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))

    system = SpringMass(n_masses=20)
    X = make_trajectories(system, 64, 20.0, 0.2, 1e-3, random_state=0)
    u0 = system.sample_initial_conditions(args.n_trajectories, random_state=1)
    n, steps = args.n_trajectories, args.n_steps
    work = n * steps

    # Bare products of the same shapes, same dtype, same device.
    w1, b1 = torch.randn(1024, 40, device=device), torch.randn(1024, device=device)
    w2, b2 = torch.randn(40, 1024, device=device), torch.randn(40, device=device)
    x = torch.randn(n, 40, device=device)

    def bare():
        with torch.no_grad():
            for _ in range(steps):
                torch.addmm(b2, torch.addmm(b1, x, w1.T), w2.T)
        sync()

    functions = {"bare matrix products": bare}
    for compile_ in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = AttNSSolver(system=system, dt=0.2, max_epochs=0, device=device, batch_size=n,
                                 compile=compile_).fit(X)
        for label, kwargs in (("every state returned", {}), ("final state only", {"final_only": True})):
            functions[f"predict (compile={compile_}, {label})"] = (
                lambda solver=solver, kwargs=kwargs: solver.predict(u0, n_steps=steps, **kwargs))
    start = time.perf_counter()
    for fn in functions.values():
        fn()  # warm-up (and compilation)
    print(f"warm-up and compilation: {time.perf_counter() - start:.0f} s")
    best = fastest_per_round(functions, args.repeats)
    bare_rate = work / best.pop("bare matrix products")
    print(f"bare matrix products: {bare_rate:.3g} trajectory-steps/s")
    for name, seconds in best.items():
        rate = work / seconds
        print(f"{name}: {rate:.3g} trajectory-steps/s, {rate / bare_rate:.0%} of the bare products' rate")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        on_gpu = device.type == "cuda"
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])) as prof:
            functions["predict (compile=True, final state only)"]()
        sort_by = "cuda_time_total" if on_gpu else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort_by, row_limit=20))


if __name__ == "__main__":
    main()
