"""Rule produce_instructions: decode and label instructions from the inferred vectors."""



from instructnet.job import start_job
from instructnet.production.run import produce_job
from instructnet.tasks import Stimulus

start_job(snakemake)  # threads; computes on the CPU (the rule requests no GPU)

w = snakemake.wildcards
produce_job(
    instructor_path=snakemake.input.model,
    decoder_path=snakemake.input.decoder,
    feedback_path=snakemake.input.vectors,
    corpus_path=snakemake.input.corpus,
    pool_paths=dict(zip(snakemake.params.tasks, snakemake.input.pools)),
    n=snakemake.params.n,
    base_seed=snakemake.params.seed,
    holdout=w.holdout, model=w.model, seed=int(w.seed),
    out=snakemake.output[0], custom=snakemake.params.custom,
    device="cpu",  # greedy decoding of a few sentences per task: no GPU requested (rule)
    stimulus=Stimulus(**snakemake.params.stimulus),
)
