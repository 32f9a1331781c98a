"""Command line of sklearn-attns (``python -m sklearn_attns``, or the ``sklearn-attns`` script).

``python -m sklearn_attns demo``
    AttNS, NeurVec and plain RK4 trained on half of a small spring-chain data set: prints
    the table and writes three figures, the test MSEs, the test MSE over time and a few
    test trajectories (a minute or two on two CPU cores).
``python -m sklearn_attns reproduce EXPERIMENT [--scale quick|medium|paper]``
    One of the paper's experiments; writes a CSV, a Markdown table with the paper's
    numbers beside ours, and a figure into ``--out`` (default ``results/EXPERIMENT``).
    A run that stops resumes from its finished cells.
``python -m sklearn_attns work-precision [--systems SYSTEM ...] [--quick]``
    Does the hybrid pay? Trains AttNS on benchmark systems and measures it against
    classical integrators at finer steps; writes a report, the rows and a work-precision
    diagram per system into ``--out`` (default ``results/work_precision``).
"""

import argparse
import shlex
import sys
import time
from pathlib import Path

from .._validation import validate_parameter
from ..devices import resolve_device
from ..estimator import HybridSolverRegressor
from . import cells, run
from . import work_precision as wp

_EXPERIMENT_HELP = {
    "fig3": "spring-mass chains: Euler, Improved Euler, RK3, RK4 x all corrections x chain sizes x "
            "100%/50% data",
    "fig4": "elastic and 2-link pendulum at 50% data, RK4, dt 0.1, all corrections",
    "fig5": "noise injection (sigma = 1e-5) in training, elastic pendulum, several data sizes",
    "table1": "depth h (2, 3, 4) and width d1 (512, 1024, 2048) with relative inference speed",
    "table2": "skip connection, S*dt input, LSTM and Transformer attention modules",
    "appendix-d1": "the 10% of test trajectories with the largest |u''|: RK4 vs NeurVec vs AttNS",
    "pde": "Burgers, FitzHugh-Nagumo and Gray-Scott (not in the paper): plain RK4, global AttNS (MLP), "
           "local AttNS, NeurVec, CSM (conv) x 25/50/100% data x seeds",
}
_PUBLIC_SCALES = ("quick", "medium", "paper")


def _scale(value):
    if value not in cells.SCALES:
        raise argparse.ArgumentTypeError(f"invalid scale {value!r} (choose from {', '.join(_PUBLIC_SCALES)})")
    return value


def _positive(convert, kind):
    """An argparse type: ``convert(value)``, refused unless positive and finite."""

    def check(value):
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind}, got {value!r}") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind}, got {value!r}")
        return number

    return check


_positive_int = _positive(int, "integer")
_positive_float = _positive(float, "number")


def _epochs(value):
    """``max_epochs`` of the solvers (a number, or a word such as ``auto``), checked by the
    solver's own rule."""
    try:
        value = int(value)
    except ValueError:
        pass
    try:
        validate_parameter(HybridSolverRegressor._parameter_constraints, "max_epochs", value)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _device(value):
    """The device as given, once the library accepts it (also: CUDA asked for where there is none)."""
    if value != "auto":
        try:
            resolve_device(value)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _out_dir(value):
    """A folder that exists or can be made: no part of the path may be a file."""
    path = Path(value)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise argparse.ArgumentTypeError(f"{str(part)!r} is a file; the output goes into a folder")
            break
    return value


def _add_run_options(parser, default_out, report=False):
    parser.add_argument("--out", type=_out_dir, metavar="DIR", help=f"output folder (default: {default_out})")
    parser.add_argument("--device", type=_device, default="auto",
                        help="torch device: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--epochs", type=_epochs, metavar="N",
                        help="training epochs, or 'auto' for the solver's choice (default: the scale's)")
    parser.add_argument("--compile", action="store_true", help="run the networks through torch.compile")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print a line per training epoch inside each cell (for long runs)")
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--fresh", action="store_true",
                       help="rerun the cells finished earlier instead of reusing them")
    if report:
        reuse.add_argument("--report", action="store_true",
                           help="run nothing: write the outputs from the cells finished so far (by this or "
                                "another process) and list the others as not run yet")
        parser.add_argument("--only", action="append", metavar="PATTERN",
                            help="run only the cells whose key (OUT/cells/KEY.json) matches this shell-style "
                                 "pattern, e.g. 'spring_mass*' or '*-rk4-*' (repeatable); the outputs list "
                                 "the other cells as done earlier or not run yet")


def _run(experiment, scale, args):
    import torch

    from ..training import subnormals_flushed

    # Flushed before torch starts its threads, so that all of them inherit the mode, not
    # only the one that calls fit (see subnormals_flushed); restored on the way out.
    with subnormals_flushed("cpu"):
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        scale = cells.with_overrides(scale, max_epochs=args.epochs)
        out = args.out or f"results/{experiment.name}"
        start = time.perf_counter()
        try:
            records, paths = run.run_experiment(experiment, scale, out=out, device=args.device,
                                                compile=args.compile, resume=not args.fresh,
                                                verbose=2 if args.verbose else 1,
                                                report_only=getattr(args, "report", False),
                                                only=getattr(args, "only", None))
        except ImportError as exc:
            print(f"error: {exc}. The CSV and Markdown files are in {out}.", file=sys.stderr)
            return 1
    print(f"{experiment.name} finished in {time.perf_counter() - start:.0f} s")
    return records, paths


def _reproduce(args):
    experiment, scale = cells.EXPERIMENTS[args.experiment], cells.SCALES[args.scale]
    if args.only:
        if args.report:
            args.parser.error("--only chooses cells to run; --report runs none")
        try:
            run._choose_cells(experiment.cells(scale), args.only, experiment.name)
        except ValueError as exc:
            args.parser.error(f"--only: {exc}")
    result = _run(experiment, scale, args)
    return result if isinstance(result, int) else 0


def _demo(args):
    result = _run(cells.DEMO, cells.DEMO_SCALE, args)
    if isinstance(result, int):
        return result
    records, paths = result
    print()
    print(paths["markdown"].read_text(encoding="utf-8"))
    mse = {r["correction"]: r["mse"] for r in records}
    print(f"AttNS against plain RK4: {_ratio(mse['plain solver'], mse['AttNS'])}; "
          f"against NeurVec: {_ratio(mse['NeurVec'], mse['AttNS'])}.")
    for key, what in (("figure", "test MSE"), ("error_figure", "test MSE over time"),
                      ("trajectories_figure", "trajectories")):
        if key in paths:
            print(f"figure ({what}): {paths[key]}")
    return 0


def _ratio(other, ours):
    """``"1.5x lower test MSE"`` or ``"2x higher test MSE"``: ours compared with other."""
    if not (ours > 0 and other > 0) or other == ours or other == float("inf") or ours == float("inf"):
        return f"test MSE {ours:.3g} against {other:.3g}"
    factor = other / ours if other > ours else ours / other
    size = f"{factor:,.0f}" if factor >= 100 else f"{factor:.2f}"
    return f"{size}x {'lower' if other > ours else 'higher'} test MSE"


def _work_precision(args):
    import torch

    torch.set_num_threads(args.threads)
    overrides = {"integrator": args.integrator, "dt": args.dt, "substeps": args.substeps,
                 "widths": None if args.widths is None else tuple(args.widths),
                 "degrees": None if args.degrees is None else tuple(args.degrees),
                 "n_train": args.n_train, "n_test": args.n_test}
    if args.dt is not None:
        for name in args.systems:
            spacing = wp.SETTINGS[name].test_spacing
            if abs(spacing / args.dt - round(spacing / args.dt)) > 1e-9 * spacing / args.dt:
                args.parser.error(f"--dt: {args.dt:g} must divide the test outputs' spacing {spacing:g} of "
                                  f"{name!r}")
    device = "cpu" if args.device == "auto" else args.device
    command = "python -m sklearn_attns " + shlex.join(args.argv)
    start = time.perf_counter()
    try:
        paths = wp.run_work_precision(args.systems, args.out or "results/work_precision", command=command,
                                      threads=args.threads, device=device, max_epochs=args.epochs or "auto",
                                      repeats=args.repeats, n_jobs=args.jobs, quick=args.quick,
                                      overrides=overrides, fitted=args.fitted, log=args.log)
    except wp.FittedSolverMismatch as exc:
        args.parser.error(f"--fitted: {exc}")
    print(f"work-precision finished in {time.perf_counter() - start:.0f} s: {paths['report']}")
    for name, figure in paths["figures"].items():
        print(f"figure ({name}): {figure}")
    return 0


def _integrator(value):
    names = tuple(wp._FINEST)
    if value not in names:
        raise argparse.ArgumentTypeError(f"invalid integrator {value!r} (choose from {', '.join(names)})")
    return value


def _add_work_precision(commands):
    names = tuple(wp.SETTINGS)
    parser = commands.add_parser(
        "work-precision", help="does the hybrid pay? work-precision diagrams of the benchmark systems",
        description="Train AttNS on each system (settings: sklearn_attns.experiments.work_precision."
                    "SETTINGS) and time it against its base integrator at finer steps, fixed-step DOP853 "
                    "and scipy's adaptive DOP853 on the same test trajectories; writes "
                    "OUT/work_precision.md (both equal-accuracy speed-ups, the one against the best "
                    "were the network free, k, c_net/c_step and k/(1+c_net/c_step) per solver), and per "
                    "system OUT/work_precision_SYSTEM.png and .json.",
        epilog="systems:\n" + "\n".join(f"  {name:<{max(map(len, names))}} {s.make()!r}: {s.why}"
                                         for name, s in wp.SETTINGS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=names, default=list(names), metavar="SYSTEM",
                        help="one or more of: " + ", ".join(names) + " (default: all)")
    parser.add_argument("--out", type=_out_dir, metavar="DIR",
                        help="output folder (default: results/work_precision)")
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="torch CPU threads (default 1: on shared cores more threads wait for each "
                             "other)")
    parser.add_argument("--device", type=_device, default="auto",
                        help="torch device of the networks and of the classical torch steps (on a GPU "
                             "every classical method steps there, compiled): auto (default: cpu), cpu, cuda, "
                             "cuda:N")
    parser.add_argument("--fitted", type=_fitted_dir, metavar="DIR",
                        help="measure the solvers saved in DIR by an earlier run (its OUT/models) instead of "
                             "fitting them again, e.g. fitted on a CPU and measured on a GPU")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of seconds per system: tiny data and networks, 2 epochs, "
                             "no compilation")
    parser.add_argument("--epochs", type=_epochs, metavar="N",
                        help="training epochs (default: auto, the solver's)")
    parser.add_argument("--widths", type=_positive_int, nargs="+", metavar="N",
                        help="network widths of the systems corrected by networks (default: per system)")
    parser.add_argument("--degrees", type=_positive_int, nargs="+", metavar="N",
                        help="polynomial degrees of the systems corrected by a polynomial (*_poly; default: "
                             "per system)")
    parser.add_argument("--integrator", type=_integrator, help="base integrator (default: per system)")
    parser.add_argument("--dt", type=_positive_float, help="the hybrid's step (default: per system)")
    parser.add_argument("--substeps", type=_positive_int, metavar="N",
                        help="base steps per hybrid step, one network call (default: per system)")
    parser.add_argument("--n-train", type=_positive_int, metavar="N",
                        help="training trajectories (default: per system)")
    parser.add_argument("--n-test", type=_positive_int, metavar="N",
                        help="test trajectories (default: per system)")
    parser.add_argument("--repeats", type=_positive_int, default=3, metavar="N",
                        help="timed rounds, the fastest counts (default 3)")
    parser.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                        help="processes making the data (default 1)")
    parser.add_argument("--log", type=_log_file, metavar="FILE", help="also append the report to this file")
    parser.set_defaults(run=_work_precision, parser=parser)


def _fitted_dir(value):
    if not Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder (the models folder of an earlier run)")
    return value


def _log_file(value):
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder; the log is a file")
    return value


def build_parser():
    """The argument parser of ``python -m sklearn_attns`` (and the ``sklearn-attns`` script)."""
    parser = argparse.ArgumentParser(
        prog="sklearn-attns",
        description="AI-hybrid ODE solvers (AttNS, ICML 2024): a demo, the paper's experiments and "
                    "work-precision diagrams.",
        epilog="examples:\n  sklearn-attns demo\n"
               "  sklearn-attns reproduce fig4 --scale quick --out results/fig4\n"
               "  sklearn-attns work-precision --systems nbody burgers --out results/work_precision",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="limited-data comparison on the spring chain (plain RK4, NeurVec, AttNS)",
        description="Train NeurVec and AttNS on 50% of 500 spring-chain trajectories and compare them with "
                    "plain RK4; prints the table, writes three figures: the test MSE, the test MSE over time "
                    "and a few test trajectories.")
    _add_run_options(demo, "results/demo")
    demo.set_defaults(run=_demo)

    epilog = "experiments:\n" + "\n".join(f"  {name:<12} {text}" for name, text in _EXPERIMENT_HELP.items())
    reproduce = commands.add_parser(
        "reproduce", help="run one of the paper's experiments: " + ", ".join(_EXPERIMENT_HELP),
        description="Run one of the paper's experiments and write EXPERIMENT.csv, EXPERIMENT.md (with the "
                    "paper's numbers beside ours) and EXPERIMENT.png. Finished cells are kept in OUT/cells "
                    "and skipped when the command is run again.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    reproduce.add_argument("experiment", choices=tuple(_EXPERIMENT_HELP), metavar="EXPERIMENT",
                           help="one of: " + ", ".join(_EXPERIMENT_HELP))
    reproduce.add_argument("--scale", type=_scale, default="quick", metavar="{quick,medium,paper}",
                           help="quick (default): minutes on two CPU cores, smaller data and networks; "
                                "medium: the paper's network on 2-20%% of its data; "
                                "paper: the paper's sizes (Table 3)")
    _add_run_options(reproduce, "results/EXPERIMENT", report=True)
    reproduce.set_defaults(run=_reproduce, parser=reproduce)
    _add_work_precision(commands)
    return parser


def main(argv=None):
    """Entry point of ``python -m sklearn_attns`` and of the ``sklearn-attns`` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.run(args)
