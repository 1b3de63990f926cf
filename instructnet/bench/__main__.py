"""Command line: ``python -m instructnet.bench {trials,embed} [options]``.

trials      trial rendering throughput (trials/s), 64-trial batches over all 50 tasks
embed       seconds to embed the 1000 shipped sentences with sbertnet_minilm on CPU
train-step  ms per training step (64 x 150 steps, 256 units) vs the matmul floor
"""

from __future__ import annotations

import argparse
import json

import torch


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
    ts.add_argument("--networks", type=int, default=1)
    ts.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.name == "train-step":
        from .train_step import run

        result = run(batch_size=args.batch_size, hidden=args.hidden, repeats=args.repeats,
                     device=args.device, networks=args.networks)
    elif args.name == "trials":
        from .trials import run

        result = run(batch_size=args.batch_size, batches=args.batches, device=args.device)
    else:
        from .embed import run

        result = run(batch_size=args.batch_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
