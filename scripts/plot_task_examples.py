"""Rule task_examples: one example trial per task family as heatmaps."""

import sys

from instructnet.figures.trials import task_examples
from instructnet.tasks import Stimulus, read_trials

sys.stderr = open(snakemake.log[0], "w")

task_examples([read_trials(p) for p in snakemake.input], snakemake.output[0],
              stimulus=Stimulus(**snakemake.params.stimulus))
