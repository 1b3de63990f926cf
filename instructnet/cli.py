"""Command-line interface: ``python -m instructnet`` (or ``instructnet``).

    instructnet trials show --task AntiDMMod1 --out trial.png [--n 2] [--seed 0]
    instructnet trials show --pool results/trials/eval/DM.parquet --index 3 --out dm.png
    instructnet tasks                      # the 50 tasks with family and structure vector
    instructnet check-config my.yaml       # the workflow's config checks, YAML errors with line
"""

from __future__ import annotations

import argparse
import os
import sys

from . import tasks


def _trials_show(args) -> None:
    from .figures.trials import plot_trials

    if args.pool:
        df = tasks.read_trials(args.pool)
        if args.task:
            df = df[df["task"] == tasks.check_task(args.task)]
        rows = args.index or [0]
        df = df.iloc[rows]
    else:
        if not args.task:
            raise SystemExit("error: give --task NAME or --pool FILE")
        thresholds = tasks.ConThresholds.read(args.thresholds) if args.thresholds else None
        df = tasks.generate_trials(args.task, args.n, args.seed, thresholds)
    out = plot_trials(df, args.out, tasks.Stimulus(args.convention, args.tuning))
    print(out)


def _tasks_list(args) -> None:
    for t in tasks.TASKS:
        kind = "conditional" if t in tasks.CONDITIONAL_TASKS else "imperative"
        vec = " ".join(f"{v:+d}" for v in tasks.STRUCTURE[t])
        print(f"{t:16s} {tasks.FAMILY_OF[t]:9s} {kind:12s} {vec}")


def _check_config(args) -> None:
    from .config import DEFAULT_CONFIG, REPO, check_config, config_label, merge, read_yaml

    # as the Snakefile: config/config.yaml of the working directory, if there, then the files
    files = ([DEFAULT_CONFIG] if os.path.exists(DEFAULT_CONFIG) else []) + args.files
    if not files:
        raise ValueError(f"no config: {DEFAULT_CONFIG} is not in {os.getcwd()}; name config files")
    config: dict = {}
    for f in files:
        merge(config, read_yaml(f))
    check_config(config, os.getcwd())
    print(f"config OK: {config_label(files, os.getcwd(), REPO)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="instructnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("trials", help="trial tools")
    trsub = tr.add_subparsers(dest="action", required=True)
    show = trsub.add_parser("show", help="render trials of a task to a PNG")
    show.add_argument("--task", help="task name, e.g. AntiDMMod1")
    show.add_argument("--pool", help="read trials from this Parquet pool instead of drawing")
    show.add_argument("--index", type=int, nargs="*", help="rows of --pool to show")
    show.add_argument("--n", type=int, default=1, help="trials to draw (default 1)")
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--thresholds", help="Con threshold table (default: shipped table)")
    show.add_argument("--convention", choices=["paper", "reference"], default="paper",
                      help="stimulus geometry (config key trials.convention; default paper)")
    show.add_argument("--tuning", type=float, default=None,
                      help="tuning width constant k (default: the convention's, 8 or 12)")
    show.add_argument("--out", required=True, help="PNG (or PDF) to write")
    show.set_defaults(func=_trials_show)
    ls = sub.add_parser("tasks", help="list the 50 tasks")
    ls.set_defaults(func=_tasks_list)
    cc = sub.add_parser(
        "check-config", help="check config files as the workflow does, before any job",
        description="Check config files as `snakemake --configfile FILE...` would (config/"
                    "config.yaml of the working directory first, if there, then FILEs in "
                    "order): YAML errors with file:line:column, then the schema, names and "
                    "files. Run it where you run snakemake. Prints 'config OK' or one error.")
    cc.add_argument("files", nargs="*", metavar="FILE", help="config files, later ones overlay")
    cc.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
