# Language production (METHODS §7, Figure 5). For each instructing model (holdout group
# × the configured instructed model × production.instructor_seed):
#   production_decoder   Production-RNN trained on the model's hidden states
#   motor_feedback       task vectors inferred with every weight frozen
#   produce_instructions instructions decoded from the states those vectors drive, labelled
#   embed_produced       produced sentences re-embedded by the corpus's LM pipeline
#   partner_eval         partner models (other seeds) perform from them
# then production_tables (stacked tables, confusion, Welch tests) and figure5.

from instructnet.production.run import default_instructor

# checked with the rest of the config (instructnet.production.run.check_production_config)
PROD = config["production"]
PRODUCTION = PROD["enabled"]  # no production section, or enabled: false: the stage is off
if PRODUCTION:
    PROD_MODEL = PROD["instructor"] or default_instructor(MODELS, LANGUAGE_MODELS)
    PROD_LM = MODEL_SPECS[PROD_MODEL].lm
    PROD_SEED = PROD["instructor_seed"]
    PROD_HOLDOUTS = list(PROD["holdouts"])
    PROD_TASKS = STUDY.production_tasks(PROD["tasks"])
    PROD_EXAMPLE = STUDY.example_task(PROD["example_task"], PROD_TASKS)
    PARTNERS = PROD["partners"]
FIGURES5 = ["fig5d_examples", "fig5e_confusion", "fig5f_partners"]
PROD_DIR = "results/production/{holdout}/{model}/seed{seed}"


def _instructor(w):
    return f"results/models/{w.holdout}/{w.model}/seed{w.seed}/model.pt"


def partner_pairs():
    """(instructor holdout, partner holdout) pairs evaluated: a partner trained on every
    task hears every instructor; a partner with tasks held out hears the instructor
    trained on every task and the instructor with the same tasks held out (double
    holdout)."""
    custom = CUSTOM_HOLDOUTS
    return [(hi, hp) for hi in PROD_HOLDOUTS for hp in PARTNERS["holdouts"]
            if hi == hp or not held_out(hi, custom) or not held_out(hp, custom)]


rule production_decoder:
    """Train the Production-RNN on one instructing model's hidden states."""
    input:
        model=_instructor,
        embeddings=lambda w: f"results/embeddings/{MODEL_SPECS[w.model].lm}.parquet",
        pools=lambda w: expand("results/trials/train/{task}.parquet",
                               task=training_tasks(w.holdout)),
    output:
        decoder=PROD_DIR + "/decoder.pt",
        log=PROD_DIR + "/decoder_log.parquet",
    params:
        stimulus=STIMULUS,
        tasks=lambda w: training_tasks(w.holdout),
        settings=lambda w: PROD["decoder"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        **stage_resources("decoder"),
    log:
        "logs/production/{holdout}/{model}/seed{seed}/decoder.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/decoder.tsv"
    script:
        "../../scripts/train_decoder.py"


rule motor_feedback:
    """Infer task vectors of the production tasks with every model weight frozen."""
    input:
        model=_instructor,
        pools=lambda w: expand("results/trials/train/{task}.parquet", task=PROD_TASKS),
    output:
        vectors=PROD_DIR + "/feedback.parquet",
        log=PROD_DIR + "/feedback_log.parquet",
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        settings=lambda w: PROD["feedback"],
        seed=config["seed"],
    threads: 2
    resources:
        gpu=1,
        **stage_resources("motor_feedback"),
    log:
        "logs/production/{holdout}/{model}/seed{seed}/feedback.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/feedback.tsv"
    script:
        "../../scripts/motor_feedback.py"


rule produce_instructions:
    """Decode instructions from the states the inferred vectors drive; label them."""
    input:
        model=_instructor,
        decoder=PROD_DIR + "/decoder.pt",
        vectors=PROD_DIR + "/feedback.parquet",
        corpus="results/instructions/corpus.parquet",
        pools=lambda w: expand("results/trials/eval/{task}.parquet", task=PROD_TASKS),
    output:
        PROD_DIR + "/produced.parquet",
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        n=lambda w: PROD["produce"]["instructions"],
        seed=config["seed"],
        custom=CUSTOM_HOLDOUTS,
    threads: 1
    log:
        "logs/production/{holdout}/{model}/seed{seed}/produce.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/produce.tsv"
    script:
        "../../scripts/produce_instructions.py"


rule embed_produced:
    """Re-embed produced sentences with the same language-model pipeline as the corpus."""
    input:
        produced=PROD_DIR + "/produced.parquet",
        corpus="results/instructions/corpus.parquet",
    output:
        PROD_DIR + "/produced_embedded.parquet",
    params:
        language_model=lambda w: LANGUAGE_MODELS[MODEL_SPECS[w.model].lm],
        batch_size=config["embeddings"]["batch_size"],
    threads: 1
    log:
        "logs/production/{holdout}/{model}/seed{seed}/embed_produced.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/embed_produced.tsv"
    script:
        "../../scripts/embed_produced.py"


rule partner_eval:
    """One partner model (another seed) performs the produced tasks from the produced
    instructions, the novel ones only, and the inferred vectors passed directly."""
    input:
        partner="results/models/{pholdout}/{model}/seed{pseed}/model.pt",
        embedded=PROD_DIR + "/produced_embedded.parquet",
        vectors=PROD_DIR + "/feedback.parquet",
        pools=lambda w: expand("results/trials/eval/{task}.parquet", task=PROD_TASKS),
    output:
        PROD_DIR + "/partners/{pholdout}/seed{pseed}.parquet",
    wildcard_constraints:
        pholdout="|".join(HOLDOUT_NAMES),
        pseed=r"\d+",
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        settings=lambda w: PARTNERS,
        seed=config["seed"],
        custom=CUSTOM_HOLDOUTS,
    threads: 1
    resources:
        gpu=1,
        **stage_resources("partner_eval"),
    log:
        "logs/production/{holdout}/{model}/seed{seed}/partners/{pholdout}/seed{pseed}.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/partners/{pholdout}/seed{pseed}.tsv"
    script:
        "../../scripts/partner_eval.py"


def produced_files():
    return expand(PROD_DIR + "/produced.parquet", holdout=PROD_HOLDOUTS, model=PROD_MODEL,
                  seed=PROD_SEED)


def partner_files():
    return [
        f"results/production/{hi}/{PROD_MODEL}/seed{PROD_SEED}/partners/{hp}/seed{ps}.parquet"
        for hi, hp in partner_pairs() for ps in PARTNERS["seeds"]
    ]


rule production_tables:
    """Stacked produced sentences and partner results, fraction novel, confusion
    matrices, partner summaries and Welch tests."""
    input:
        produced=lambda w: produced_files(),
        partners=lambda w: partner_files(),
    output:
        produced="results/tables/production_produced.parquet",
        partners="results/tables/production_partners.parquet",
        novel="results/tables/production_novel.parquet",
        confusion="results/tables/production_confusion.parquet",
        summary="results/tables/production_summary.parquet",
        welch="results/tables/production_welch.parquet",
    localrule: True
    script:
        "../../scripts/production_tables.py"


rule figure5:
    """One Figure 5 panel, from the production tables alone."""
    input:
        lambda w: {
            "fig5d_examples": ["results/tables/production_produced.parquet"],
            "fig5e_confusion": ["results/tables/production_produced.parquet"],
            "fig5f_partners": ["results/tables/production_partners.parquet",
                               "results/tables/production_welch.parquet"],
        }[w.figure],
    output:
        png=report("results/figures/{figure}.png", category="Figure 5",
                   caption="../report/fig5.rst"),
        pdf="results/figures/{figure}.pdf",
    wildcard_constraints:
        figure="|".join(FIGURES5),
    params:
        example_task=PROD_EXAMPLE if PRODUCTION else None,
        tasks=STUDY.tasks,
    localrule: True
    log:
        "logs/figures/{figure}.log",
    script:
        "../../scripts/plot_figure5.py"


def production_targets():
    """Figure 5 panels and tables (nothing when the stage is off)."""
    if not PRODUCTION:
        return []
    return [f"results/figures/{name}.png" for name in FIGURES5] + [
        "results/tables/production_summary.parquet", "results/tables/production_novel.parquet"]
