"""Rule partner_eval: one partner model performs the produced tasks from each source."""



from instructnet.job import start_job
from instructnet.production.run import partner_job
from instructnet.tasks import Stimulus

DEVICE = start_job(snakemake)

w = snakemake.wildcards
partner_job(
    partner_path=snakemake.input.partner,
    embedded_path=snakemake.input.embedded,
    feedback_path=snakemake.input.vectors,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    instructor_holdout=w.holdout, partner_holdout=w.pholdout, partner_seed=int(w.pseed),
    model=w.model, settings=snakemake.params.settings, base_seed=snakemake.params.seed,
    out=snakemake.output[0], custom=snakemake.params.custom,
    device=DEVICE,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
