# instructnet: Riveland & Pouget (2024) as a Snakemake workflow.
#
#   snakemake --cores 2                                  # default CPU demo (config/config.yaml)
#   snakemake --cores 2 --configfile config/paper.yaml   # the full study
#   snakemake --cores 2 results/figures/task_examples.png   # one target
#
# All logic lives in the `instructnet` package; rules only wire files together.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/trials.smk"
include: "workflow/rules/embeddings.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/production.smk"


rule all:
    input:
        trial_pools(),
        "results/figures/task_examples.png",
        "results/instructions/vocabulary.parquet",
        embeddings(),
        trained_models(),
        evaluations(),
        figure2_targets(),
        analysis_targets(),
        production_targets(),
    default_target: True
