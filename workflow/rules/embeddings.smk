# Instruction corpus and language-model embeddings (computed once per model).


rule corpus:
    """The instruction corpus as a table, plus its vocabulary."""
    input:
        PLAN.instructions(),
    output:
        corpus="results/instructions/corpus.parquet",
        vocabulary="results/instructions/vocabulary.parquet",
    localrule: True
    log:
        "logs/instructions/corpus.log",
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
    params:
        model=lambda w: PLAN.language_models[w.lm],
        batch_size=config["embeddings"]["batch_size"],
    threads: 2
    resources:
        gpu=lambda w: 0 if PLAN.language_models[w.lm].kind == "bow" else 1,
        mem_mb=lambda w, attempt: PLAN.embed_mem_mb(w.lm, attempt),
        runtime=lambda w, attempt: PLAN.embed_runtime(w.lm, attempt),
    log:
        "logs/embeddings/{lm}.log",
    benchmark:
        "benchmarks/embeddings/{lm}.tsv"
    script:
        "../../scripts/embed_corpus.py"


rule prefetch_models:
    """Download the configured language models into the Hugging Face cache (run it on a
    machine with internet, e.g. a cluster login node: snakemake --cores 1 prefetch_models)."""
    localrule: True
    params:
        models=[PLAN.language_models[name] for name in config["language_models"]],
    run:
        from instructnet.embeddings import prefetch

        for model in params.models:
            print(f"prefetching {model.name} ({model.source or 'bag of words'})")
            prefetch(model)
