"""Rule evaluate: one test (heldout, swapped, combined, input_only, validation) of one model."""



from instructnet.evaluation.run import evaluate
from instructnet.job import start_job
from instructnet.tasks import Stimulus

DEVICE = start_job(snakemake)

w = snakemake.wildcards
table = evaluate(
    test=w.test,
    model_path=snakemake.input.model,
    holdout=w.holdout,
    custom_holdouts=snakemake.params.custom,
    tasks=snakemake.params.tasks,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    embeddings_path=snakemake.input.get("embeddings"),
    settings=snakemake.params.settings,
    seed=snakemake.params.seed,
    device=DEVICE,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
table.to_parquet(snakemake.output[0], index=False)
