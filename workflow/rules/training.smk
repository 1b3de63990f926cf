# Training: one job per (holdout group, model, seed).


def train_inputs(wildcards):
    tasks = training_tasks(wildcards.holdout, CUSTOM_HOLDOUTS)
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
        spec=lambda w: MODEL_SPECS[w.model],
        tasks=lambda w: training_tasks(w.holdout, CUSTOM_HOLDOUTS),
        training=lambda w: train_settings(MODEL_SPECS[w.model]),
        hidden=config["training"].get("hidden", 256),
        seed=config["seed"],
        checkpoint="results/models/{holdout}/{model}/seed{seed}/checkpoint.pt",
        language_model=lambda w: LANGUAGE_MODELS.get(MODEL_SPECS[w.model].lm),
        tuning=config.get("tuning", {}),
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/models/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/models/{holdout}/{model}/seed{seed}.tsv"
    script:
        "../../scripts/train_model.py"
