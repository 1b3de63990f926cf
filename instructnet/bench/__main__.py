"""Command line: ``python -m instructnet.bench {trials,embed} [options]``.

trials      trial rendering throughput (trials/s), 64-trial batches over all 50 tasks
embed       seconds to embed the 1000 shipped sentences with sbertnet_minilm on CPU
train-step  ms per training step (64 x 150 steps, 256 units) vs the matmul floor;
            --networks N (or 1,2,4,8): trial-steps/s of N networks trained packed
ccgp        seconds for the representations and CCGP of one model over all layers
gpu         `make gpu-check`: CUDA tests and GPU measurements -> results/bench/gpu.json
design      design experiments: train models x seeds on a task set with holdout groups,
            score training accuracy and zero-shot accuracy (instructnet.bench.design)
errors      where trained models' errors go, per task: correct, the other answer (the
            Pro/Anti counterpart's rule), other errors (instructnet.bench.errors)
"""

from __future__ import annotations

import argparse
import json

import torch


def _network_counts(text: str) -> list[int]:
    """``--networks``: one positive count or a comma-separated list of them."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or N1,N2,... (positive integers), got {text!r}")
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m instructnet.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    p = sub.add_parser("trials", help="trial rendering throughput (trials/s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=500)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    e = sub.add_parser("embed", help="corpus embedding time with the offline default LM")
    e.add_argument("--batch-size", type=int, default=64)
    ts = sub.add_parser("train-step", help="training-step time vs this machine's matmul floor")
    ts.add_argument("--batch-size", type=int, default=64)
    ts.add_argument("--hidden", type=int, default=256)
    ts.add_argument("--repeats", type=int, default=5)
    ts.add_argument("--networks", type=_network_counts, default=[1],
                    help="networks per step: N, or a list such as 1,2,4,8 for the scaling "
                         "curve of packed training (N > 1 or a list: instructnet.bench.packed)")
    ts.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    cg = sub.add_parser("ccgp", help="CCGP of one model and seed over all layers (s)")
    cg.add_argument("--trials", type=int, default=250)
    cg.add_argument("--lm-layers", type=int, default=7)
    cg.add_argument("--lm-dim", type=int, default=384)
    cg.add_argument("--threads", type=int, default=2)
    g = sub.add_parser("gpu", help="validate and measure the CUDA path (make gpu-check)")
    g.add_argument("--out", default="results/bench/gpu.json")
    g.add_argument("--sections", default=",".join(("cuda_tests", "ceilings", "train_step",
                                                   "packed", "pipeline", "training")),
                   help="comma-separated subset of the sections, in order")
    d = sub.add_parser("design", help="train/score models on a task set with holdout groups")
    d.add_argument("--task-set", nargs="+", default=["go_dm"],
                   help="named sets (go, dm, go_dm, go_dmmod) or comma-separated tasks and family:<name>")
    d.add_argument("--group", action="append", default=[],
                   help="holdout group NAME=Task,Task (repeatable; checked against the principle)")
    d.add_argument("--auto-groups", type=int, default=0,
                   help="also draw this many groups per task set by the principle (one task per family)")
    d.add_argument("--group-seed", type=int, default=0)
    d.add_argument("--list-eligible", action="store_true",
                   help="print the tasks the principle allows to hold out, and the groups; train nothing")
    d.add_argument("--collect", action="store_true",
                   help="train nothing: gather every finished job under OUT/jobs into OUT/design.parquet")
    d.add_argument("--compare", nargs="+", metavar="LABEL=PATH",
                   help="train nothing: compare finished sweeps (a design.parquet or its folder, "
                        "one per label) over groups and seeds")
    d.add_argument("--target", type=float, default=0.85,
                   help="with --compare: the mean training accuracy whose first point is reported")
    d.add_argument("--at-most", type=int, default=None,
                   help="with --compare: ignore evaluation points after this many batches")
    d.add_argument("--only-seeds", nargs="+", type=int, default=None,
                   help="with --compare: only these seeds' networks")
    d.add_argument("--per-task", action="store_true",
                   help="with --compare: also each task's training accuracy at the last point")
    d.add_argument("--no-check", action="store_true", help="allow groups that break the principle")
    d.add_argument("--models", nargs="+", default=["simplenet", "structurenet", "sbertnet_minilm"],
                   help="model names; an instructed model may carry @zscore (standardised "
                        "embeddings, training.embedding_norm), @whiten or @none")
    d.add_argument("--seeds", nargs="+", type=int, default=[0])
    d.add_argument("--batches", type=int, default=3000)
    d.add_argument("--batches-per-epoch", type=int, default=500)
    d.add_argument("--eval-every", type=int, default=0, help="score every K batches (0: at the end)")
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--lr-decay", type=float, default=None,
                   help="per epoch; default 0.95 per 2400 batches spread over the epochs")
    d.add_argument("--lr-final-steps", nargs="*", type=int, default=[],
                   help="training.lr_final_steps: the rate x --lr-final-factor from the epoch "
                        "that lies K epochs before the last, for each K (reference: 5 2 1)")
    d.add_argument("--lr-final-factor", type=float, default=0.25)
    d.add_argument("--hidden", type=int, default=256)
    d.add_argument("--batch-size", type=int, default=64, help="trials per training batch")
    d.add_argument("--convention", choices=["paper", "reference"], default="paper",
                   help="stimulus geometry of training and scoring trials (trials.convention)")
    d.add_argument("--train-trials", type=int, default=128)
    d.add_argument("--curve-trials", type=int, default=64)
    d.add_argument("--heldout-trials", type=int, default=256)
    d.add_argument("--base-seed", type=int, default=2024)
    d.add_argument("--jobs", type=int, default=2, help="parallel processes")
    d.add_argument("--threads", type=int, default=1,
                   help="torch threads per job (also with --jobs 1); CPU seconds are per job")
    d.add_argument("--device", default="cpu")
    d.add_argument("--packed", action="store_true",
                   help="train each task set's networks together (packed trainer; for GPUs)")
    d.add_argument("--out", default="results/design")
    d.add_argument("--embeddings-dir", default=None, help="embedding cache (default OUT/embeddings)")
    er = sub.add_parser("errors", help="correct / the other answer / other errors per task")
    er.add_argument("models", nargs="+", help="model.pt files of the workflow (results/models/...)")
    er.add_argument("--pools", default="results/trials/eval",
                    help="folder of trial pools <task>.parquet (default: the evaluation pools)")
    er.add_argument("--embeddings", default=None,
                    help="the instructed models' embedding table (results/embeddings/<lm>.parquet)")
    er.add_argument("--tasks", nargs="+", default=None, help="default: every task with a pool")
    er.add_argument("--convention", choices=["paper", "reference"], default="paper")
    er.add_argument("--seed", type=int, default=2024)
    er.add_argument("--out", default=None, help="also write the per-task table (Parquet)")
    args = parser.parse_args(argv)
    if args.name == "errors":
        from ..tasks.stimulus import Stimulus
        from .errors import run as run_errors
        from .errors import summary

        table = run_errors(args.models, args.pools, args.embeddings, args.tasks,
                           Stimulus(args.convention), args.seed)
        if args.out:
            table.to_parquet(args.out, index=False)
        print(json.dumps({"summary": summary(table).to_dict("records"),
                          "tasks": table.round(3).to_dict("records")}, indent=1))
        return
    if args.name == "gpu":
        from .gpu import run as run_gpu

        raise SystemExit(run_gpu(args.out, [s for s in args.sections.split(",") if s]))
    if args.name == "design":
        from .design import main as run_design

        print(json.dumps(run_design(args), indent=1, default=str))
        return
    if args.name == "ccgp":
        from .ccgp import run as run_ccgp

        print(json.dumps(run_ccgp(trials=args.trials, lm_layers=args.lm_layers,
                                  lm_dim=args.lm_dim, threads=args.threads), indent=2))
        return
    if args.name == "train-step" and args.networks != [1]:
        from .packed import run

        result = run(networks=args.networks, batch_size=args.batch_size, hidden=args.hidden,
                     repeats=args.repeats, device=args.device)
    elif args.name == "train-step":
        from .train_step import run

        result = run(batch_size=args.batch_size, hidden=args.hidden, repeats=args.repeats,
                     device=args.device)
    elif args.name == "trials":
        from .trials import run

        result = run(batch_size=args.batch_size, batches=args.batches, device=args.device)
    else:
        from .embed import run

        result = run(batch_size=args.batch_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
