# Language production (METHODS §7, Figure 5). For each instructing model (holdout group
# × the configured instructed model × production.instructor_seed):
#   production_decoder   Production-RNN trained on the model's hidden states
#   motor_feedback       task vectors inferred with every weight frozen
#   produce_instructions instructions decoded from the states those vectors drive, labelled
#   embed_produced       produced sentences re-embedded by the corpus's LM pipeline
#   partner_eval         partner models (other seeds) perform from them
# then production_tables (stacked tables, confusion, Welch tests), from which
# figures.smk draws Figure 5.

from instructnet.plan import PRODUCTION_PRIORITY

# instructnet.plan.Plan.production: None when the stage is off (no production section,
# or enabled: false); checked with the rest of the config
# (instructnet.production.run.check_production_config)
PROD = config["production"]
PRODUCTION = PLAN.production
PROD_TASKS = PRODUCTION.tasks if PRODUCTION else []


rule production_decoder:
    """Train the Production-RNN on one instructing model's hidden states."""
    input:
        model="results/models/{holdout}/{model}/seed{seed}/model.pt",
        embeddings=lambda w: f"results/embeddings/{PLAN.spec(w.model).lm}.parquet",
        pools=lambda w: expand(
            "results/trials/train/{task}.parquet", task=PLAN.training_tasks(w.holdout)
        ),
    output:
        decoder="results/production/{holdout}/{model}/seed{seed}/decoder.pt",
        log="results/production/{holdout}/{model}/seed{seed}/decoder_log.parquet",
    log:
        "logs/production/{holdout}/{model}/seed{seed}/decoder.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/decoder.tsv"
    priority: PRODUCTION_PRIORITY
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("decoder"),
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PLAN.training_tasks(w.holdout),
        settings=lambda w: PROD["decoder"],
        seed=config["seed"],
    script:
        "../../scripts/train_decoder.py"


rule motor_feedback:
    """Infer task vectors of the production tasks with every model weight frozen."""
    input:
        model="results/models/{holdout}/{model}/seed{seed}/model.pt",
        pools=lambda w: expand("results/trials/train/{task}.parquet", task=PROD_TASKS),
    output:
        vectors="results/production/{holdout}/{model}/seed{seed}/feedback.parquet",
        log="results/production/{holdout}/{model}/seed{seed}/feedback_log.parquet",
    log:
        "logs/production/{holdout}/{model}/seed{seed}/feedback.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/feedback.tsv"
    priority: PRODUCTION_PRIORITY
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("motor_feedback"),
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        settings=lambda w: PROD["feedback"],
        seed=config["seed"],
    script:
        "../../scripts/motor_feedback.py"


rule produce_instructions:
    """Decode instructions from the states the inferred vectors drive; label them."""
    input:
        model="results/models/{holdout}/{model}/seed{seed}/model.pt",
        decoder="results/production/{holdout}/{model}/seed{seed}/decoder.pt",
        vectors="results/production/{holdout}/{model}/seed{seed}/feedback.parquet",
        corpus="results/instructions/corpus.parquet",
        pools=lambda w: expand("results/trials/eval/{task}.parquet", task=PROD_TASKS),
    output:
        "results/production/{holdout}/{model}/seed{seed}/produced.parquet",
    log:
        "logs/production/{holdout}/{model}/seed{seed}/produce.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/produce.tsv"
    priority: PRODUCTION_PRIORITY
    conda:
        "../../envs/instructnet.yaml"
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        n=lambda w: PROD["produce"]["instructions"],
        seed=config["seed"],
        custom=PLAN.custom_holdouts,
    script:
        "../../scripts/produce_instructions.py"


rule embed_produced:
    """Re-embed produced sentences with the same language-model pipeline as the corpus."""
    input:
        produced="results/production/{holdout}/{model}/seed{seed}/produced.parquet",
        corpus="results/instructions/corpus.parquet",
    output:
        "results/production/{holdout}/{model}/seed{seed}/produced_embedded.parquet",
    log:
        "logs/production/{holdout}/{model}/seed{seed}/embed_produced.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/embed_produced.tsv"
    priority: PRODUCTION_PRIORITY
    conda:
        "../../envs/instructnet.yaml"
    params:
        language_model=lambda w: PLAN.language_models[PLAN.spec(w.model).lm],
        batch_size=config["embeddings"]["batch_size"],
    script:
        "../../scripts/embed_produced.py"


rule partner_eval:
    """One partner model (another seed) performs the produced tasks from the produced
    instructions, the novel ones only, and the inferred vectors passed directly."""
    input:
        partner="results/models/{pholdout}/{model}/seed{pseed}/model.pt",
        embedded="results/production/{holdout}/{model}/seed{seed}/produced_embedded.parquet",
        vectors="results/production/{holdout}/{model}/seed{seed}/feedback.parquet",
        pools=lambda w: expand("results/trials/eval/{task}.parquet", task=PROD_TASKS),
    output:
        "results/production/{holdout}/{model}/seed{seed}/partners/{pholdout}/seed{pseed}.parquet",
    log:
        "logs/production/{holdout}/{model}/seed{seed}/partners/{pholdout}/seed{pseed}.log",
    benchmark:
        "benchmarks/production/{holdout}/{model}/seed{seed}/partners/{pholdout}/seed{pseed}.tsv"
    priority: PRODUCTION_PRIORITY
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("partner_eval"),
    params:
        stimulus=STIMULUS,
        tasks=lambda w: PROD_TASKS,
        settings=lambda w: PRODUCTION.partners,
        seed=config["seed"],
        custom=PLAN.custom_holdouts,
    script:
        "../../scripts/partner_eval.py"


rule production_tables:
    """Stacked produced sentences and partner results, fraction novel, confusion
    matrices, partner summaries and Welch tests."""
    input:
        produced=lambda w: PLAN.produced_files(),
        partners=lambda w: PLAN.partner_files(),
    output:
        produced="results/tables/production_produced.parquet",
        partners="results/tables/production_partners.parquet",
        novel="results/tables/production_novel.parquet",
        confusion="results/tables/production_confusion.parquet",
        summary="results/tables/production_summary.parquet",
        welch="results/tables/production_welch.parquet",
    log:
        "logs/tables/production.log",
    priority: PRODUCTION_PRIORITY
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    script:
        "../../scripts/production_tables.py"
