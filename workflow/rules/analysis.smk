# Representation analyses (METHODS §7): representations per model, CCGP over the whole
# hierarchy, PCA (Figure 3a-d), CCGP figures (3e, 3f), single units and task-variance
# clusters (Figure 4).
#   results/representations/{holdout}/{model}/seed{seed}.parquet   samples per layer
#   results/ccgp/language/{lm}.parquet                            CCGP of the LM layers
#   results/ccgp/{holdout}/{model}/seed{seed}.parquet             CCGP, every layer
#   results/tables/ccgp{,_summary,_welch}.parquet, pca.parquet     aggregates
#   results/units/{holdout}/{model}/seed{seed}/*.parquet           unit statistics
# Everything runs on the study's tasks (STUDY, instructnet.tasks.study): CCGP uses the
# dichotomies of study tasks; PCA and the Figure 4 panels need their fixed tasks.


ANALYSIS = config["analysis"]
UNITS = PLAN.units


rule representations:
    """Samples of every layer of one model: RNN state at stimulus onset, task embedding,
    rule vector (and the swapped-instruction variant of held-out tasks)."""
    input:
        unpack(lambda w: PLAN.model_inputs(w.holdout, w.model, w.seed)),
    output:
        "results/representations/{holdout}/{model}/seed{seed}.parquet",
    log:
        "logs/representations/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/representations/{holdout}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("representations"),
    params:
        tasks=STUDY.tasks,
        trials=ANALYSIS["trials"],
        custom=PLAN.custom_holdouts,
        seed=config["seed"],
        stimulus=STIMULUS,
    script:
        "../../scripts/representations.py"


rule ccgp:
    """CCGP of one model over its whole hierarchy (LM layers -> embedding -> RNN)."""
    input:
        unpack(lambda w: PLAN.ccgp_inputs(w.holdout, w.model, w.seed)),
    output:
        "results/ccgp/{holdout}/{model}/seed{seed}.parquet",
    log:
        "logs/ccgp/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/ccgp/{holdout}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/instructnet.yaml"
    params:
        C=ANALYSIS["svm_c"],
        tasks=STUDY.tasks,
        dichotomies=PLAN.dichotomies,
    script:
        "../../scripts/ccgp.py"


# CCGP of every layer of a language model (training instructions); shared by all
# sensorimotor models built on it.
use rule ccgp as ccgp_language with:
    input:
        layers="results/embeddings/{lm}_layers.parquet",
        pooled="results/embeddings/{lm}.parquet",
    output:
        "results/ccgp/language/{lm}.parquet",
    log:
        "logs/ccgp/language/{lm}.log",
    benchmark:
        "benchmarks/ccgp/language/{lm}.tsv"


rule ccgp_tables:
    """Every model's CCGP stacked, per-seed summaries per condition and layer, and Welch
    tests between neighbouring models."""
    input:
        PLAN.ccgp_files(),
    output:
        table="results/tables/ccgp.parquet",
        summary="results/tables/ccgp_summary.parquet",
        welch="results/tables/ccgp_welch.parquet",
    log:
        "logs/tables/ccgp.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        held=PLAN.held,
    script:
        "../../scripts/ccgp_tables.py"


rule pca:
    """First three principal components of the RNN states at stimulus onset and of the
    task embeddings for DMMod1, AntiDMMod1, DMMod2, AntiDMMod2 (Figure 3a-d)."""
    input:
        lambda w: PLAN.pca_inputs(),
    output:
        "results/tables/pca.parquet",
    log:
        "logs/tables/pca.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        models=PLAN.pca_models(),
    script:
        "../../scripts/pca.py"


rule units:
    """Single-unit statistics, the illustrated units' curves and task-variance clusters
    of one model (Figure 4)."""
    input:
        unpack(lambda w: PLAN.model_inputs(w.holdout, w.model, w.seed)),
    output:
        stats="results/units/{holdout}/{model}/seed{seed}/unit_stats.parquet",
        curves="results/units/{holdout}/{model}/seed{seed}/unit_curves.parquet",
        variance="results/units/{holdout}/{model}/seed{seed}/task_variance.parquet",
    log:
        "logs/units/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/units/{holdout}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("units"),
    params:
        tasks=STUDY.tasks,
        trials=UNITS["trials"],
        bins=UNITS["bins"],
        max_clusters=UNITS["max_clusters"],
        seed=config["seed"],
        stimulus=STIMULUS,
    script:
        "../../scripts/units.py"
