# Figures: example trials of each task family, and every panel of Figures 2-5 (and the
# supplementary figures), each drawn from saved tables alone. Which tables and which
# drawing function make each panel: instructnet.figures.panels; which panels this config
# supports: instructnet.plan.Plan.all_targets.

from instructnet.figures.panels import PANELS


rule task_examples:
    """One example trial per task family: inputs, targets and loss mask as heatmaps."""
    input:
        # figures.task_examples, or the first study task of each family
        expand(
            "results/trials/eval/{task}.parquet",
            task=STUDY.task_examples(config["figures"]["task_examples"]),
        ),
    output:
        report(
            "results/figures/task_examples.png",
            category="Tasks",
            caption="../report/task_examples.rst",
        ),
    log:
        "logs/figures/task_examples.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        stimulus=STIMULUS,
    script:
        "../../scripts/plot_task_examples.py"


rule figure:
    """One panel of Figures 2-5 (or a supplementary figure), from its tables alone."""
    input:
        lambda w: PLAN.figure_inputs(w.figure),
    output:
        png=report(
            "results/figures/{figure}.png",
            category=lambda w: PLAN.figure_category(w.figure),
            subcategory="{figure}",
            caption="../report/figures.rst",
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "logs/figures/{figure}.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        figure=lambda w: PANELS[w.figure].figure,
        settings=lambda w: PLAN.figure_settings(w.figure),
    script:
        "../../scripts/plot_figure.py"
