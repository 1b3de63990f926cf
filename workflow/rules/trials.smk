# Trial pools (tables of trial latents) and example-trial figures.


rule trial_pool:
    """Draw the {pool} pool of {task}: one row of latents per trial (Parquet)."""
    input:
        thresholds=lambda w: PLAN.con_thresholds(w.task),
    output:
        "results/trials/{pool}/{task}.parquet",
    params:
        n=lambda w: config["trials"]["pools"][w.pool],
        seed=config["seed"],
    # ~0.15 s per paper-sized pool: on a cluster, queueing a job would cost far more
    localrule: True
    log:
        "logs/trials/{pool}/{task}.log",
    benchmark:
        "benchmarks/trials/{pool}/{task}.tsv"
    script:
        "../../scripts/make_trial_pool.py"


rule task_examples:
    """One example trial per task family: inputs, targets and loss mask as heatmaps."""
    input:
        # figures.task_examples, or the first study task of each family
        expand("results/trials/eval/{task}.parquet",
               task=STUDY.task_examples(config["figures"]["task_examples"])),
    output:
        report(
            "results/figures/task_examples.png",
            category="Tasks",
            caption="../report/task_examples.rst",
        ),
    params:
        stimulus=STIMULUS,
    localrule: True
    log:
        "logs/figures/task_examples.log",
    script:
        "../../scripts/plot_task_examples.py"


rule con_thresholds:
    """Derive the ConDM/ConAntiDM (noise, contrast) frontier from a SIMPLENET trained on
    the 48 other tasks (used when trials.con_thresholds is 'derived')."""
    input:
        f"results/models/nocon/simplenet/seed{SEEDS[0]}/model.pt",
    output:
        table="results/tasks/con_thresholds.parquet",
        sweep="results/tasks/con_sweep.parquet",
    params:
        stimulus=STIMULUS,
        sweep=config["trials"]["con_sweep"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        **stage_resources("con_thresholds"),
    log:
        "logs/tasks/con_thresholds.log",
    script:
        "../../scripts/con_thresholds.py"
