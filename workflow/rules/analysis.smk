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
ANALYSIS_TRIALS = ANALYSIS["trials"]
SVM_C = ANALYSIS["svm_c"]
PCA_HOLDOUT = ANALYSIS["pca_holdout"]
_UNITS = ANALYSIS["units"]
UNITS_HOLDOUT = _UNITS["holdout"]
UNITS_MODEL = _UNITS["model"] or next(
    (m for m in MODELS if MODEL_SPECS[m].instructed), MODELS[0] if MODELS else "simplenet")
UNITS_DIR = f"results/units/{UNITS_HOLDOUT}/{UNITS_MODEL}/seed{SEEDS[0]}"
FIGURES3 = ["fig3ad_pca", "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers"]
FIGURES4 = ["fig4a_go_tuning", "fig4b_matching", "fig4c_dm_contrast", "fig4d_comp",
            "supp_task_variance"]
HELD = {h: list(held_out(h, CUSTOM_HOLDOUTS)) for h in HOLDOUT_NAMES}
DICHOTOMIES = STUDY.dichotomies()


def _model_inputs(wildcards):
    spec = MODEL_SPECS[wildcards.model]
    inputs = {
        "model": f"results/models/{wildcards.holdout}/{wildcards.model}/seed{wildcards.seed}/model.pt",
        "pools": expand("results/trials/eval/{task}.parquet", task=STUDY.tasks),
    }
    if spec.instructed:
        inputs["embeddings"] = f"results/embeddings/{spec.lm}.parquet"
    return inputs


rule representations:
    """Samples of every layer of one model: RNN state at stimulus onset, task embedding,
    rule vector (and the swapped-instruction variant of held-out tasks)."""
    input:
        unpack(_model_inputs),
    output:
        "results/representations/{holdout}/{model}/seed{seed}.parquet",
    params:
        tasks=STUDY.tasks,
        trials=ANALYSIS_TRIALS,
        custom=CUSTOM_HOLDOUTS,
        seed=config["seed"],
        stimulus=STIMULUS,
    threads: 2
    # CPU only (no gpu resource): forward passes of a few hundred trials per task, which
    # take seconds on a CPU; a GPU would sit idle behind the Parquet writing.
    resources:
        **stage_resources("representations"),
    log:
        "logs/representations/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/representations/{holdout}/{model}/seed{seed}.tsv"
    script:
        "../../scripts/representations.py"


rule ccgp_language:
    """CCGP of every layer of a language model (training instructions); shared by all
    sensorimotor models built on it."""
    input:
        layers="results/embeddings/{lm}_layers.parquet",
        pooled="results/embeddings/{lm}.parquet",
    output:
        "results/ccgp/language/{lm}.parquet",
    params:
        C=SVM_C,
        tasks=STUDY.tasks,
        dichotomies=DICHOTOMIES,
    threads: 1
    log:
        "logs/ccgp/language/{lm}.log",
    benchmark:
        "benchmarks/ccgp/language/{lm}.tsv"
    script:
        "../../scripts/ccgp.py"


def _ccgp_inputs(wildcards):
    spec = MODEL_SPECS[wildcards.model]
    inputs = {"reps": f"results/representations/{wildcards.holdout}/{wildcards.model}/seed{wildcards.seed}.parquet"}
    if spec.instructed:
        inputs["language"] = f"results/ccgp/language/{spec.lm}.parquet"
    return inputs


rule ccgp:
    """CCGP of one model over its whole hierarchy (LM layers -> embedding -> RNN)."""
    input:
        unpack(_ccgp_inputs),
    output:
        "results/ccgp/{holdout}/{model}/seed{seed}.parquet",
    params:
        C=SVM_C,
        tasks=STUDY.tasks,
        dichotomies=DICHOTOMIES,
    threads: 1
    log:
        "logs/ccgp/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/ccgp/{holdout}/{model}/seed{seed}.tsv"
    script:
        "../../scripts/ccgp.py"


def ccgp_files():
    return expand("results/ccgp/{holdout}/{model}/seed{seed}.parquet",
                  holdout=config["holdouts"], model=MODELS, seed=SEEDS)


rule ccgp_tables:
    """Every model's CCGP stacked, per-seed summaries per condition and layer, and Welch
    tests between neighbouring models."""
    input:
        ccgp_files(),
    output:
        table="results/tables/ccgp.parquet",
        summary="results/tables/ccgp_summary.parquet",
        welch="results/tables/ccgp_welch.parquet",
    params:
        held=HELD,
    localrule: True
    log:
        "logs/tables/ccgp.log",
    script:
        "../../scripts/ccgp_tables.py"


def _pca_inputs(wildcards):
    STUDY.require_figure("fig3ad_pca")  # its four tasks must be in the study
    return expand("results/representations/{holdout}/{model}/seed{seed}.parquet",
                  holdout=PCA_HOLDOUT, model=MODELS, seed=SEEDS[0])


rule pca:
    """First three principal components of the RNN states at stimulus onset and of the
    task embeddings for DMMod1, AntiDMMod1, DMMod2, AntiDMMod2 (Figure 3a-d)."""
    input:
        _pca_inputs,
    output:
        "results/tables/pca.parquet",
    params:
        models=[(PCA_HOLDOUT, m, SEEDS[0]) for m in MODELS],
    localrule: True
    log:
        "logs/tables/pca.log",
    script:
        "../../scripts/pca.py"


rule units:
    """Single-unit statistics, the illustrated units' curves and task-variance clusters
    of one model (Figure 4)."""
    input:
        unpack(_model_inputs),
    output:
        stats="results/units/{holdout}/{model}/seed{seed}/unit_stats.parquet",
        curves="results/units/{holdout}/{model}/seed{seed}/unit_curves.parquet",
        variance="results/units/{holdout}/{model}/seed{seed}/task_variance.parquet",
    params:
        tasks=STUDY.tasks,
        trials=_UNITS["trials"],
        bins=_UNITS["bins"],
        max_clusters=_UNITS["max_clusters"],
        seed=config["seed"],
        stimulus=STIMULUS,
    threads: 2
    resources:  # CPU only, like representations
        **stage_resources("units"),
    log:
        "logs/units/{holdout}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/units/{holdout}/{model}/seed{seed}.tsv"
    script:
        "../../scripts/units.py"


def _figure3_inputs(wildcards):
    STUDY.require_figure(wildcards.figure)
    t = "results/tables/"
    return {
        "fig3ad_pca": [t + "pca.parquet"],
        "fig3e_ccgp_zero_shot": [t + "ccgp.parquet", t + "zero_shot.parquet"],
        "fig3f_ccgp_layers": [t + "ccgp_summary.parquet", t + "ccgp_welch.parquet"],
    }[wildcards.figure]


rule figure3:
    """One Figure 3 panel, from the tables alone."""
    input:
        _figure3_inputs,
    output:
        png=report("results/figures/{figure}.png", category="Figure 3",
                   subcategory="{figure}", caption="../report/figure3.rst"),
        pdf="results/figures/{figure}.pdf",
    wildcard_constraints:
        figure="|".join(FIGURES3),
    params:
        held=HELD.get(PCA_HOLDOUT, []),
    localrule: True
    log:
        "logs/figures/{figure}.log",
    script:
        "../../scripts/plot_figure3.py"


def _figure4_inputs(wildcards):
    STUDY.require_figure(wildcards.figure)
    return {name: f"{UNITS_DIR}/{table}.parquet" for name, table in
            (("stats", "unit_stats"), ("curves", "unit_curves"), ("variance", "task_variance"))}


rule figure4:
    """One Figure 4 panel (or the task-variance heatmap), from the unit tables alone."""
    input:
        unpack(_figure4_inputs),
    output:
        png=report("results/figures/{figure}.png", category="Figure 4",
                   subcategory="{figure}", caption="../report/figure4.rst"),
        pdf="results/figures/{figure}.pdf",
    wildcard_constraints:
        figure="|".join(FIGURES4),
    params:
        model=UNITS_MODEL,
        held=HELD.get(UNITS_HOLDOUT, []),
    localrule: True
    log:
        "logs/figures/{figure}.log",
    script:
        "../../scripts/plot_figure4.py"


def analysis_targets():
    """The Figure 3/4 panels and tables the current config and study support (panels
    whose tasks are not in the study are left out: STUDY.figure_applies); none with
    analysis.enabled false."""
    wanted = []
    if not ANALYSIS["enabled"]:
        return wanted
    if DICHOTOMIES:
        wanted += ["results/tables/ccgp.parquet", "results/tables/ccgp_summary.parquet",
                   "results/figures/fig3f_ccgp_layers.png"]
        heldout_groups = [h for h in config["holdouts"] if HELD[h]]
        if heldout_groups and "heldout" in EVAL_TESTS:
            wanted.append("results/figures/fig3e_ccgp_zero_shot.png")
    if PCA_HOLDOUT in config["holdouts"] and MODELS and STUDY.figure_applies("fig3ad_pca"):
        wanted.append("results/figures/fig3ad_pca.png")
    if UNITS_HOLDOUT in config["holdouts"] and MODELS:
        wanted += [f"results/figures/{f}.png" for f in FIGURES4 if STUDY.figure_applies(f)]
    return wanted
