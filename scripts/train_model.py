"""Rule train: one (holdout, model, seed) training job."""



from instructnet.job import start_job
from instructnet.tasks import Stimulus
from instructnet.training import TrainConfig
from instructnet.training.run import TuningConfig, train_job

DEVICE = start_job(snakemake)

w = snakemake.wildcards
tasks = snakemake.params.tasks
train_job(
    spec=snakemake.params.spec,
    holdout=w.holdout,
    seed=int(w.seed),
    tasks=tasks,
    pool_paths=dict(zip(tasks, snakemake.input.pools)),
    config=TrainConfig.from_mapping(snakemake.params.training),
    base_seed=snakemake.params.seed,
    model_out=snakemake.output.model,
    log_out=snakemake.output.log,
    embeddings_path=snakemake.input.get("embeddings"),
    hidden=snakemake.params.hidden,
    device=DEVICE,
    checkpoint=snakemake.params.checkpoint,
    language_model=snakemake.params.language_model,
    tuning=TuningConfig(**snakemake.params.tuning),
    stimulus=Stimulus(**snakemake.params.stimulus),
)
