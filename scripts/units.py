"""Rule units: single-unit statistics and task-variance clusters of one model (Figure 4)."""



from instructnet.analysis.units import unit_analyses
from instructnet.embeddings import instruction_rows, read_embeddings
from instructnet.job import start_job
from instructnet.models.io import load_model
from instructnet.seeding import seed_int
from instructnet.tasks import Stimulus, read_trials

start_job(snakemake)  # threads; computes on the CPU (the rule requests no GPU)

w = snakemake.wildcards
model, _ = load_model(snakemake.input.model)
tasks = snakemake.params.tasks  # the study's tasks
frames = {t: read_trials(p) for t, p in zip(tasks, snakemake.input.pools)}
sentences = None
if "embeddings" in snakemake.input.keys():
    rows, _ = read_embeddings(snakemake.input.embeddings)
    sentences = instruction_rows(rows, tasks, "train")
stats, curves, variance = unit_analyses(
    model, frames, sentences, snakemake.params.trials,
    seed=seed_int(snakemake.params.seed, "units", w.holdout, w.model, int(w.seed)), n_bins=snakemake.params.bins,
    max_clusters=snakemake.params.max_clusters,
    stimulus=Stimulus(**snakemake.params.stimulus))
stats.to_parquet(snakemake.output.stats, index=False)
curves.to_parquet(snakemake.output.curves, index=False)
variance.to_parquet(snakemake.output.variance, index=False)
