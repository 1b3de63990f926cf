# Training: one job per (holdout group, model, seed).


def train_inputs(wildcards):
    tasks = training_tasks(wildcards.holdout)
    inputs = {"pools": expand("results/trials/train/{task}.parquet", task=tasks)}
    spec = MODEL_SPECS[wildcards.model]
    if spec.instructed:
        inputs["embeddings"] = f"results/embeddings/{spec.lm}.parquet"
    return inputs


rule train:
    """Train one sensorimotor model to criterion (resumable: a killed job continues from
    its last finished epoch, results/models/.../checkpoint.pt)."""
    input:
        unpack(train_inputs),
    output:
        model="results/models/{holdout}/{model}/seed{seed}/model.pt",
        log="results/models/{holdout}/{model}/seed{seed}/train_log.parquet",
    params:
        stimulus=STIMULUS,
        spec=lambda w: MODEL_SPECS[w.model],
        tasks=lambda w: training_tasks(w.holdout),
        training=lambda w: train_settings(MODEL_SPECS[w.model]),
        hidden=config["training"]["hidden"],
        seed=config["seed"],
        checkpoint="results/models/{holdout}/{model}/seed{seed}/checkpoint.pt",
        language_model=lambda w: LANGUAGE_MODELS.get(MODEL_SPECS[w.model].lm),
        tuning=config["tuning"],
    # one thread: two 1-thread jobs train ~1.3x more batches per second than one 2-thread
    # job on 2 cores (bench train-step, batch 32: 86 ms at 1 thread, 56 ms at 2)
    threads: 1
    resources:
        gpu=1,
        mem_mb=job_mem_mb,
        runtime=train_runtime,
    log:
        "logs/models/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/models/{holdout}/{model}/seed{seed}.tsv"
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
import re

PACKING = config["training"]["packing"]
PACKED_MODELS = [m for m in MODELS if not MODEL_SPECS[m].tuned]


def packed_members(models):
    return [(m, s) for m in models for s in SEEDS]


def packed_inputs(models):
    def inputs(wildcards):
        tasks = training_tasks(wildcards.holdout)
        lms = sorted({MODEL_SPECS[m].lm for m in models(wildcards) if MODEL_SPECS[m].instructed})
        return {"pools": expand("results/trials/train/{task}.parquet", task=tasks),
                "embeddings": [f"results/embeddings/{lm}.parquet" for lm in lms]}

    return inputs


def packed_params(models):
    """What scripts/train_packed.py needs, per member (model, seed)."""
    return dict(
        members=lambda w: packed_members(models(w)),
        specs=lambda w: {m: MODEL_SPECS[m] for m in models(w)},
        training=lambda w: {m: train_settings(MODEL_SPECS[m]) for m in models(w)},
        tasks=lambda w: training_tasks(w.holdout),
        checkpoints=lambda w: [f"results/models/{w.holdout}/{m}/seed{s}/checkpoint.pt"
                               for m, s in packed_members(models(w))],
        hidden=config["training"]["hidden"],
        seed=config["seed"],
        max_networks=PACKING["max_networks"],
        cuda_graphs=PACKING["cuda_graphs"],
    )


PACK_CONSTRAINTS = {
    "holdout": "|".join(map(re.escape, config["holdouts"])),
    "model": "|".join(map(re.escape, PACKED_MODELS)) or "(?!)",
}


if PACKING["by"] == "seeds" and PACKED_MODELS:

    rule train_packed:
        """Train the config's seeds of one (holdout, model) together (training.packing)."""
        input:
            unpack(packed_inputs(lambda w: [w.model])),
        output:
            model=expand("results/models/{{holdout}}/{{model}}/seed{seed}/model.pt", seed=SEEDS),
            log=expand("results/models/{{holdout}}/{{model}}/seed{seed}/train_log.parquet", seed=SEEDS),
        wildcard_constraints:
            **PACK_CONSTRAINTS,
        params:
            stimulus=STIMULUS,
            **packed_params(lambda w: [w.model]),
        threads: 2
        resources:
            gpu=1,
            mem_mb=lambda w, attempt: JOB_MEM_MB["base"] * attempt,
            runtime=lambda w, attempt: JOB_RUNTIME_MIN["train"] * attempt,
        log:
            "logs/models/{holdout}/{model}/packed.log",
        benchmark:
            "benchmarks/models/{holdout}/{model}/packed.tsv"
        script:
            "../../scripts/train_packed.py"

    ruleorder: train_packed > train

elif PACKING["by"] == "models" and PACKED_MODELS:

    rule train_packed_models:
        """Train every packable model x seed of the config on one holdout together."""
        input:
            unpack(packed_inputs(lambda w: PACKED_MODELS)),
        output:
            model=expand("results/models/{{holdout}}/{model}/seed{seed}/model.pt",
                         model=PACKED_MODELS, seed=SEEDS),
            log=expand("results/models/{{holdout}}/{model}/seed{seed}/train_log.parquet",
                       model=PACKED_MODELS, seed=SEEDS),
        wildcard_constraints:
            holdout=PACK_CONSTRAINTS["holdout"],
        params:
            stimulus=STIMULUS,
            **packed_params(lambda w: PACKED_MODELS),
        threads: 2
        resources:
            gpu=1,
            mem_mb=lambda w, attempt: JOB_MEM_MB["base"] * attempt,
            runtime=lambda w, attempt: JOB_RUNTIME_MIN["train"] * attempt,
        log:
            "logs/models/{holdout}/packed.log",
        benchmark:
            "benchmarks/models/{holdout}/packed.tsv"
        script:
            "../../scripts/train_packed.py"

    ruleorder: train_packed_models > train
