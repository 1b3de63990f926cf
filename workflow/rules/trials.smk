# Trial pools (tables of trial latents) and the derived Con thresholds.


rule trial_pool:
    """Draw the {pool} pool of {task}: one row of latents per trial (Parquet)."""
    input:
        thresholds=lambda w: PLAN.con_thresholds(w.task),
    output:
        "results/trials/{pool}/{task}.parquet",
    log:
        "logs/trials/{pool}/{task}.log",
    benchmark:
        "benchmarks/trials/{pool}/{task}.tsv"
    # ~0.15 s per paper-sized pool: on a cluster, queueing a job would cost far more
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        n=lambda w: config["trials"]["pools"][w.pool],
        seed=config["seed"],
    script:
        "../../scripts/make_trial_pool.py"


rule con_thresholds:
    """Derive the ConDM/ConAntiDM (noise, contrast) frontier from a SIMPLENET trained on
    the 48 other tasks (used when trials.con_thresholds is 'derived')."""
    input:
        f"results/models/nocon/simplenet/seed{SEEDS[0]}/model.pt",
    output:
        table="results/tasks/con_thresholds.parquet",
        sweep="results/tasks/con_sweep.parquet",
    log:
        "logs/tasks/con_thresholds.log",
    conda:
        "../../envs/instructnet.yaml"
    threads: 2
    resources:
        **PLAN.resources("con_thresholds"),
    params:
        stimulus=STIMULUS,
        sweep=config["trials"]["con_sweep"],
        seed=config["seed"],
    script:
        "../../scripts/con_thresholds.py"
