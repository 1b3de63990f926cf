# Tables of the evaluation results, statistics and the fidelity table (Figure 2 is drawn
# from them: figures.smk).


rule collect:
    """Stack the per-model files of one test (or the training logs) into one table."""
    input:
        lambda w: PLAN.collected(w.name),
    output:
        "results/tables/{name}.parquet",
    log:
        "logs/tables/{name}.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    script:
        "../../scripts/collect_tables.py"


rule statistics:
    """Zero-shot tables, summaries with 95 % CIs, pairwise Welch tests, the clause
    analysis and the fidelity table (ours beside the paper's, both scorings)."""
    input:
        heldout="results/tables/heldout.parquet",
        extra=PLAN.other_test_tables(),
    output:
        zero_shot="results/tables/zero_shot.parquet",
        summary="results/tables/zero_shot_summary.parquet",
        conditions="results/tables/summary_by_condition.parquet",
        welch="results/tables/welch.parquet",
        clause_observed="results/tables/clause_observed.parquet",
        clause_null="results/tables/clause_null.parquet",
        clause_tests="results/tables/clause_tests.parquet",
        fidelity="results/tables/fidelity.parquet",
    log:
        "logs/tables/statistics.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        config_name=CONFIG_NAME,
        seed=config["seed"],
    script:
        "../../scripts/statistics.py"


rule fidelity:
    """results/tables/fidelity.md: every §8 row, ours under both scorings beside the
    paper's, plus r(CCGP, zero-shot) and the partner accuracies."""
    input:
        unpack(lambda w: PLAN.fidelity_inputs()),
    output:
        "results/tables/fidelity.md",
    log:
        "logs/tables/fidelity.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        config_name=CONFIG_NAME,
        stimulus=STIMULUS,
    script:
        "../../scripts/fidelity.py"
