# Evaluation of trained models (METHODS §6): one job per (holdout, model, seed, test).
#   heldout     learning curves on each held-out task (batch 0 = zero-shot)
#   swapped     held-out tasks given the next group member's instructions (instructed)
#   combined    task vectors from three compositional reference tasks the model trained on
#   input_only  held-out learning with only the RNN's input weights trained
#   validation  the trained tasks with their validation instructions (instructed models;
#               multitask models, the paper's condition, score every task)


rule evaluate:
    """Run one evaluation test of one trained model on the evaluation trial pools."""
    input:
        unpack(lambda w: PLAN.eval_inputs(w.holdout, w.model, w.seed, w.test)),
    output:
        "results/eval/{holdout}/{model}/seed{seed}/{test}.parquet",
    log:
        "logs/eval/{holdout}/{model}/seed{seed}/{test}.log",
    benchmark:
        "benchmarks/eval/{holdout}/{model}/seed{seed}/{test}.tsv"
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("evaluate"),
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PLAN.eval_tasks(w.holdout, w.test),
        settings=PLAN.eval_settings(),
        custom=PLAN.custom_holdouts,
        seed=config["seed"],
    script:
        "../../scripts/evaluate.py"
