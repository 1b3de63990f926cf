"""Rule motor_feedback: infer task vectors of the production tasks by motor feedback."""



from instructnet.job import start_job
from instructnet.production.run import feedback_job
from instructnet.tasks import Stimulus

DEVICE = start_job(snakemake)

w = snakemake.wildcards
feedback_job(
    instructor_path=snakemake.input.model,
    tasks=snakemake.params.tasks,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    settings=snakemake.params.settings,
    base_seed=snakemake.params.seed,
    holdout=w.holdout, model=w.model, seed=int(w.seed),
    out=snakemake.output.vectors, out_log=snakemake.output.log,
    device=DEVICE,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
