"""Rule production_decoder: train the Production-RNN of one instructing model."""



from instructnet.job import start_job
from instructnet.production.run import decoder_job
from instructnet.tasks import Stimulus

DEVICE = start_job(snakemake)

w = snakemake.wildcards
decoder_job(
    instructor_path=snakemake.input.model,
    embeddings_path=snakemake.input.embeddings,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    settings=snakemake.params.settings,
    base_seed=snakemake.params.seed,
    holdout=w.holdout, model=w.model, seed=int(w.seed),
    out_model=snakemake.output.decoder, out_log=snakemake.output.log,
    device=DEVICE,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
