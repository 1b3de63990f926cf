# Training: one job per (holdout group, model, seed).


rule train:
    """Train one sensorimotor model to criterion (resumable: a killed job continues from
    its last finished epoch, results/models/.../checkpoint.pt)."""
    input:
        unpack(lambda w: PLAN.train_inputs(w.holdout, w.model)),
    output:
        model="results/models/{holdout}/{model}/seed{seed}/model.pt",
        log="results/models/{holdout}/{model}/seed{seed}/train_log.parquet",
    log:
        "logs/models/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/models/{holdout}/{model}/seed{seed}.tsv"
    # on a fixed number of cores the instructing model trains first (Plan.train_priority)
    priority: lambda w: PLAN.train_priority(w.model)
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("train"),
    params:
        stimulus=STIMULUS,
        spec=lambda w: PLAN.spec(w.model),
        tasks=lambda w: PLAN.training_tasks(w.holdout),
        training=lambda w: PLAN.train_settings(w.model),
        hidden=config["training"]["hidden"],
        seed=config["seed"],
        checkpoint="results/models/{holdout}/{model}/seed{seed}/checkpoint.pt",
        language_model=lambda w: PLAN.language_models.get(PLAN.spec(w.model).lm),
        tuning=config["tuning"],
    script:
        "../../scripts/train_model.py"


# Packed training (training.packing): several networks trained as one stacked
# computation in one job (instructnet.training.packed), writing the same per-(holdout,
# model, seed) model.pt and train_log.parquet as rule train, so downstream rules do not
# change. `by: seeds`: one job per (holdout, model) trains the config's seeds; `by:
# models`: one job per holdout trains every packable model of the config x its seeds.
# Only the config's holdouts, models and seeds are packed, and never tuned models; any
# other model.pt (an explicitly requested seed, the nocon reference, tuned models) is
# made by rule train. Checkpoints are per network, in rule train's format and place.
PACKED = PLAN.packed_job


if PACKED:

    rule train_packed:
        """Train several networks together: the seeds of one (holdout, model), or every
        packable model x seed of one holdout (training.packing.by)."""
        input:
            unpack(lambda w: PLAN.packed_inputs(w.holdout, PACKED.models(w))),
        output:
            model=PACKED.outputs("model.pt"),
            log=PACKED.outputs("train_log.parquet"),
        log:
            f"logs/models/{PACKED.name}/packed.log",
        benchmark:
            f"benchmarks/models/{PACKED.name}/packed.tsv"
        wildcard_constraints:
            **PACKED.constraints,
        conda:
            "../../envs/instructnet.yaml"
        threads: 2
        resources:
            **PLAN.resources("train_packed"),
        params:
            **PLAN.packed_params(PACKED.models),
            hidden=config["training"]["hidden"],
            seed=config["seed"],
            max_networks=config["training"]["packing"]["max_networks"],
            cuda_graphs=config["training"]["packing"]["cuda_graphs"],
            stimulus=STIMULUS,
        script:
            "../../scripts/train_packed.py"

    ruleorder: train_packed > train
