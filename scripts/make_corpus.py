"""Rule corpus: the instruction file as a validated table, and its vocabulary."""

import sys

from instructnet.instructions import load_corpus, vocabulary
from instructnet.job import start_job

start_job(snakemake, torch=False)

corpus = load_corpus(snakemake.input[0])
corpus.to_parquet(snakemake.output.corpus, index=False)
vocab = vocabulary(corpus)
vocab.to_parquet(snakemake.output.vocabulary, index=False)
print(f"{len(corpus)} sentences, {len(vocab)} words", file=sys.stderr)
