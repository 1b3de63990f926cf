"""Rule embed_produced: re-embed the produced sentences with the corpus's LM pipeline."""



from instructnet.job import start_job
from instructnet.production.run import embed_produced_job

start_job(snakemake)  # threads; computes on the CPU (the rule requests no GPU)

embed_produced_job(
    produced_path=snakemake.input.produced,
    language_model=snakemake.params.language_model,
    corpus_path=snakemake.input.corpus,
    out=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    device="cpu",  # a few hundred produced sentences: no GPU requested (rule)
)
