# Instruction corpus and language-model embeddings (computed once per model).


rule corpus:
    """The instruction corpus as a table, plus its vocabulary."""
    input:
        PLAN.instructions(),
    output:
        corpus="results/instructions/corpus.parquet",
        vocabulary="results/instructions/vocabulary.parquet",
    log:
        "logs/instructions/corpus.log",
    priority: PLAN.first_priority
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    script:
        "../../scripts/make_corpus.py"


rule embed:
    """Embed every sentence with a frozen language model: pooled vectors and the
    sentence mean of every kept hidden layer."""
    input:
        "results/instructions/corpus.parquet",
    output:
        pooled="results/embeddings/{lm}.parquet",
        layers="results/embeddings/{lm}_layers.parquet",
    log:
        "logs/embeddings/{lm}.log",
    benchmark:
        "benchmarks/embeddings/{lm}.tsv"
    priority: lambda w: PLAN.embed_priority(w.lm)
    conda:
        "../../envs/instructnet.yaml"
    resources:
        **PLAN.resources("embed"),
    params:
        model=lambda w: PLAN.language_models[w.lm],
        batch_size=config["embeddings"]["batch_size"],
    script:
        "../../scripts/embed_corpus.py"


rule prefetch_models:
    """Download the configured language models into the Hugging Face cache (run it on a
    machine with internet, e.g. a cluster login node: snakemake --cores 1 prefetch_models)."""
    log:
        "logs/embeddings/prefetch_models.log",
    localrule: True
    conda:
        "../../envs/instructnet.yaml"
    params:
        models=[PLAN.language_models[name] for name in config["language_models"]],
    script:
        "../../scripts/prefetch_models.py"
