"""Rule representations: every layer's samples of one trained model (Parquet)."""

import logging

from instructnet.analysis.representations import model_representations, write_representations
from instructnet.embeddings import instruction_rows, read_embeddings
from instructnet.job import start_job
from instructnet.models.io import load_model
from instructnet.seeding import seed_int
from instructnet.tasks import Stimulus, read_pools
from instructnet.tasks.holdouts import held_out, swapped_instruction_task

start_job(snakemake)  # threads; computes on the CPU (the rule requests no GPU)

w = snakemake.wildcards
model, meta = load_model(snakemake.input.model)
tasks = snakemake.params.tasks  # the study's tasks
pools = read_pools(dict(zip(tasks, snakemake.input.pools)), Stimulus(**snakemake.params.stimulus))
sentences = swapped = None
if "embeddings" in snakemake.input.keys():
    rows, _ = read_embeddings(snakemake.input.embeddings)
    sentences = instruction_rows(rows, tasks, "train")
    custom = snakemake.params.custom
    swapped = {t: swapped_instruction_task(t, w.holdout, custom) for t in held_out(w.holdout, custom)}
table = model_representations(model, pools, sentences, snakemake.params.trials,
                              seed=seed_int(snakemake.params.seed, "representations", w.holdout, w.model, int(w.seed)), swapped=swapped,
                              tasks=tasks)
write_representations(table, snakemake.output[0])
logging.info("%d samples over layers %s", len(table), sorted(set(table["layer"])))
