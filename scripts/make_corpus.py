"""Rule corpus: the instruction file as a validated table, and its vocabulary."""

import sys

from instructnet.instructions import load_corpus, vocabulary

sys.stderr = open(snakemake.log[0], "w")

corpus = load_corpus(snakemake.input[0])
corpus.to_parquet(snakemake.output.corpus, index=False)
vocab = vocabulary(corpus)
vocab.to_parquet(snakemake.output.vocabulary, index=False)
print(f"{len(corpus)} sentences, {len(vocab)} words", file=sys.stderr)
