"""Rule con_thresholds: sweep noise x contrast on DM/AntiDM with the reference SIMPLENET
and write the 95 %-correct frontier."""



from instructnet.job import start_job
from instructnet.models.io import load_model
from instructnet.tasks import Stimulus
from instructnet.training.con_thresholds import frontier, sweep

device = start_job(snakemake)

settings = snakemake.params.sweep
model, meta = load_model(snakemake.input[0], device)
table = sweep(
    model,
    noise_levels=settings["noise"],
    contrasts=settings["contrast"],
    trials=settings["trials"],
    seed=snakemake.params.seed,
    device=device,
    stimulus=Stimulus(**snakemake.params.stimulus),
)
table.to_parquet(snakemake.output.sweep, index=False)
frontier(table).to_parquet(snakemake.output.table, index=False)
