"""Rule task_examples: one example trial per task family as heatmaps."""


from instructnet.figures.trials import task_examples
from instructnet.job import start_job
from instructnet.tasks import Stimulus, read_trials

start_job(snakemake, torch=False)

task_examples([read_trials(p) for p in snakemake.input], snakemake.output[0],
              stimulus=Stimulus(**snakemake.params.stimulus))
