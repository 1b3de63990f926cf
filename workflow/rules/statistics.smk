# Tables of the evaluation results, statistics, the fidelity table and Figure 2.

# Holdout groups of the swap and family panels: those of the config, else the built-in
# groups that fit the study (instructnet.tasks.study), else (tuned panel) the config's
# groups that hold tasks out.
SWAP_HOLDOUTS = ([h for h in config["holdouts"] if h.startswith("swap")]
                 or STUDY.builtin_holdouts("swap")
                 or [h for h in config["holdouts"] if held_out(h, CUSTOM_HOLDOUTS)])
FAMILY_HOLDOUTS = STUDY.builtin_holdouts("family")
TUNED = [m for m in MODELS if m.endswith("_tuned")]
# Figure 2e compares tuned models with their untuned twins: those of the config, or,
# when it lists none (the panel was requested explicitly), the tuned variants of its
# instructed models.
_TUNABLE = [m for m in MODELS if f"{m}_tuned" in MODEL_SPECS]
TUNED_PAIRS = (TUNED + [m[: -len("_tuned")] for m in TUNED]) or (
    _TUNABLE + [f"{m}_tuned" for m in _TUNABLE])
FIGURES2 = ["fig2a_learning_curves", "fig2b_distribution", "fig2c_swapped", "fig2d_family",
            "fig2e_tuned", "fig2f_clause", "supp_training_curves", "supp_validation",
            "supp_welch_heatmaps"]


def collected(name):
    """Evaluation files behind results/tables/{name}.parquet."""
    if name == "heldout_family":
        return eval_files("heldout", holdouts=FAMILY_HOLDOUTS)
    if name == "heldout_tuned":
        return eval_files("heldout", holdouts=SWAP_HOLDOUTS, models=TUNED_PAIRS)
    if name == "train_logs":
        return [f.replace("model.pt", "train_log.parquet") for f in trained_models()]
    return eval_files(name)


rule collect:
    """Stack the per-model files of one test (or the training logs) into one table."""
    input:
        lambda w: collected(w.name),
    output:
        "results/tables/{name}.parquet",
    wildcard_constraints:
        name="heldout|swapped|combined|input_only|validation|heldout_family|heldout_tuned|train_logs",
    localrule: True
    script:
        "../../scripts/collect_tables.py"


rule statistics:
    """Zero-shot tables, summaries with 95 % CIs, pairwise Welch tests, the clause
    analysis and the fidelity table (ours beside the paper's, both scorings)."""
    input:
        heldout="results/tables/heldout.parquet",
        extra=[f"results/tables/{t}.parquet" for t in EVAL_TESTS if t != "heldout"],
    output:
        zero_shot="results/tables/zero_shot.parquet",
        summary="results/tables/zero_shot_summary.parquet",
        conditions="results/tables/summary_by_condition.parquet",
        welch="results/tables/welch.parquet",
        clause_observed="results/tables/clause_observed.parquet",
        clause_null="results/tables/clause_null.parquet",
        clause_tests="results/tables/clause_tests.parquet",
        fidelity="results/tables/fidelity.parquet",
    params:
        config_name=config_label(workflow.configfiles, os.getcwd(), workflow.basedir),
        seed=config["seed"],
    localrule: True
    script:
        "../../scripts/statistics.py"


def fidelity_inputs(wildcards):
    """The fidelity table, and where the run has them the CCGP and zero-shot tables
    (r of Figure 3e) and the partner summary (Figure 5) for the headlines that are not
    per model."""
    inputs = {"table": "results/tables/fidelity.parquet"}
    if "results/figures/fig3e_ccgp_zero_shot.png" in analysis_targets():
        inputs["ccgp"] = "results/tables/ccgp.parquet"
        inputs["zero_shot"] = "results/tables/zero_shot.parquet"
    if PRODUCTION:
        inputs["partners"] = "results/tables/production_summary.parquet"
    return inputs


rule fidelity:
    """results/tables/fidelity.md: every §8 row, ours under both scorings beside the
    paper's, plus r(CCGP, zero-shot) and the partner accuracies."""
    input:
        unpack(fidelity_inputs),
    output:
        "results/tables/fidelity.md",
    params:
        config_name=config_label(workflow.configfiles, os.getcwd(), workflow.basedir),
        stimulus=STIMULUS,
    localrule: True
    log:
        "logs/tables/fidelity.log",
    script:
        "../../scripts/fidelity.py"


def figure_inputs(wildcards):
    STUDY.require_figure(wildcards.figure)  # fig2f: conditional and imperative tasks
    t = "results/tables/"
    return {
        "fig2a_learning_curves": [t + "heldout.parquet"],
        "fig2b_distribution": [t + "zero_shot.parquet"],
        "fig2c_swapped": [t + "zero_shot.parquet", t + "swapped.parquet"],
        "fig2d_family": [t + "heldout_family.parquet"],
        "fig2e_tuned": [t + "heldout_tuned.parquet"],
        "fig2f_clause": [t + "clause_observed.parquet", t + "clause_null.parquet"],
        "supp_training_curves": [t + "train_logs.parquet"],
        "supp_validation": [t + "validation.parquet"],
        "supp_welch_heatmaps": [t + "welch.parquet"],
    }[wildcards.figure]


rule figure2:
    """One Figure 2 panel (or supplementary figure), from the tables alone."""
    input:
        figure_inputs,
    output:
        png=report("results/figures/{figure}.png", category="Figure 2",
                   caption="../report/figure2.rst"),
        pdf="results/figures/{figure}.pdf",
    wildcard_constraints:
        figure="|".join(FIGURES2),
    localrule: True
    log:
        "logs/figures/{figure}.log",
    script:
        "../../scripts/plot_figure2.py"


def figure2_targets():
    """The Figure 2 set the current config supports."""
    wanted = ["fig2a_learning_curves", "fig2b_distribution", "supp_training_curves",
              "supp_welch_heatmaps"]
    if STUDY.figure_applies("fig2f_clause"):
        wanted.append("fig2f_clause")
    instructed = any(MODEL_SPECS[m].instructed for m in MODELS)
    if "swapped" in EVAL_TESTS and instructed:
        wanted.append("fig2c_swapped")
    if any(h.startswith("family") for h in config["holdouts"]):
        wanted.append("fig2d_family")
    if TUNED:
        wanted.append("fig2e_tuned")
    if "validation" in EVAL_TESTS and instructed:
        wanted.append("supp_validation")
    return [f"results/figures/{name}.png" for name in wanted] + [
        "results/tables/fidelity.md", "results/tables/zero_shot_summary.parquet"]
