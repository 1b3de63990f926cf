# Evaluation of trained models (METHODS §6): one job per (holdout, model, seed, test).
#   heldout     learning curves on each held-out task (batch 0 = zero-shot)
#   swapped     held-out tasks given the next group member's instructions (instructed)
#   combined    task vectors from three compositional reference tasks the model trained on
#   input_only  held-out learning with only the RNN's input weights trained
#   validation  the trained tasks with their validation instructions (instructed models;
#               multitask models, the paper's condition, score every task)

EVAL = config["evaluation"]
EVAL_TESTS = EVAL["tests"]


def eval_tasks(holdout, test):
    """Tasks a test scores (instructnet.tasks.study.Study.evaluation_tasks): the trained
    tasks for validation, else the held-out tasks (combined: those with references among
    the training tasks)."""
    return STUDY.evaluation_tasks(holdout, test)


def eval_applies(holdout, model, test):
    """Whether a test makes sense for this holdout group and model."""
    spec = MODEL_SPECS[model]
    if test == "validation":
        return spec.instructed
    if not eval_tasks(holdout, test):
        return False
    return spec.instructed or test != "swapped"


def eval_inputs(wildcards):
    spec = MODEL_SPECS[wildcards.model]
    inputs = {
        "model": f"results/models/{wildcards.holdout}/{wildcards.model}/seed{wildcards.seed}/model.pt",
        "pools": expand("results/trials/eval/{task}.parquet",
                        task=eval_tasks(wildcards.holdout, wildcards.test)),
    }
    if spec.instructed:
        inputs["embeddings"] = f"results/embeddings/{spec.lm}.parquet"
    return inputs


rule evaluate:
    """Run one evaluation test of one trained model on the evaluation trial pools."""
    input:
        unpack(eval_inputs),
    output:
        "results/eval/{holdout}/{model}/seed{seed}/{test}.parquet",
    wildcard_constraints:
        test="heldout|swapped|combined|input_only|validation",
    params:
        stimulus=STIMULUS,
        tasks=lambda w: eval_tasks(w.holdout, w.test),
        settings={k: v for k, v in EVAL.items() if k != "tests"},
        custom=CUSTOM_HOLDOUTS,
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_mem_mb,
        runtime=evaluate_runtime,
    log:
        "logs/eval/{holdout}/{model}/seed{seed}/{test}.log",
    benchmark:
        "benchmarks/eval/{holdout}/{model}/seed{seed}/{test}.tsv"
    script:
        "../../scripts/evaluate.py"


def eval_files(test, holdouts=None, models=None):
    """Every evaluation file of ``test`` over the grid (only where the test applies)."""
    return [
        f"results/eval/{h}/{m}/seed{s}/{test}.parquet"
        for h in (holdouts if holdouts is not None else config["holdouts"])
        for m in (models if models is not None else MODELS)
        for s in SEEDS
        if eval_applies(h, m, test)
    ]


def evaluations():
    return [f for test in EVAL_TESTS for f in eval_files(test)]
