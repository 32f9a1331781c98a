"""Rollout throughput of the default AttNS network on the 20-mass chain.

Prints trajectory-steps per second of ``predict`` beside the rate that bare torch matrix
products of the network's shapes reach in the same run: per step, the two products
``(n, 40) @ (40, 1024)`` and ``(n, 1024) @ (1024, 40)`` with their biases (``addmm``), in
the network's dtype (float32). The fraction is rollout rate / bare rate (target: 70%).
``predict`` is timed returning every state (a float64 array of n x (n_steps + 1) x 40,
whose copy to the host is part of the cost) and returning the final state only.

Run: python benchmarks/bench_inference.py [--device cpu|cuda] [--n-trajectories N]
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


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-trajectories", type=int, default=4096)
    parser.add_argument("--n-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
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

    bare()
    bare_rate = work / best_of(bare, args.repeats)
    print(f"bare matrix products: {bare_rate:.3g} trajectory-steps/s")
    for compile_ in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = AttNSSolver(system=system, dt=0.2, max_epochs=0, device=device, batch_size=n,
                                 compile=compile_).fit(X)
        solver.predict(u0, n_steps=2)  # warm-up (and compilation)
        for label, kwargs in (("every state returned", {}), ("final state only", {"final_only": True})):
            solver.predict(u0, n_steps=steps, **kwargs)
            rate = work / best_of(lambda: solver.predict(u0, n_steps=steps, **kwargs), args.repeats)
            print(f"predict (compile={compile_}, {label}): {rate:.3g} trajectory-steps/s, "
                  f"{rate / bare_rate:.0%} of the bare products' rate")


if __name__ == "__main__":
    main()
