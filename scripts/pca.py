"""Rule pca: principal components of RNN states and task embeddings (Figure 3a-d)."""


from instructnet.analysis.representations import PCA_TASKS, pca_table, read_representations
from instructnet.job import start_job

start_job(snakemake, torch=False)
reps = {tuple(key): read_representations(path)
        for key, path in zip(snakemake.params.models, snakemake.input)}
pca_table(reps, PCA_TASKS).to_parquet(snakemake.output[0], index=False)
