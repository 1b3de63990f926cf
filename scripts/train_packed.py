"""Rule train_packed: several networks trained in one job (training.packing)."""



from instructnet.job import start_job
from instructnet.tasks import Stimulus
from instructnet.training import TrainConfig
from instructnet.training.packed import PackMember, train_pack

DEVICE = start_job(snakemake)

p = snakemake.params
tasks = p.tasks
members = [
    PackMember(
        spec=p.specs[model],
        holdout=snakemake.wildcards.holdout,
        seed=int(seed),
        tasks=tasks,
        config=TrainConfig.from_mapping(p.training[model]),
        model_out=model_out,
        log_out=log_out,
        checkpoint=checkpoint,
    )
    for (model, seed), model_out, log_out, checkpoint in zip(
        p.members, snakemake.output.model, snakemake.output.log, p.checkpoints)
]
embeddings = {path.rsplit("/", 1)[-1].removesuffix(".parquet"): path
              for path in snakemake.input.embeddings}
train_pack(
    members,
    pool_paths=dict(zip(tasks, snakemake.input.pools)),
    base_seed=p.seed,
    embeddings_paths=embeddings,
    hidden=p.hidden,
    device=DEVICE,
    max_networks=p.max_networks,
    cuda_graphs=p.cuda_graphs,
    stimulus=Stimulus(**p.stimulus),
)
