"""Production jobs, one per workflow rule (callable without Snakemake).

Each job reads its inputs from files and writes Parquet (the decoder: a torch
checkpoint), with every random stream derived by :func:`seed_int` from the config's
master seed and the job's names, so the same inputs give the same bytes (on CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..embeddings import LanguageModel, instruction_rows, read_embeddings
from ..embeddings import load as load_language_model
from ..evaluation.protocols import is_instructed
from ..models.io import load_model
from ..models.spec import ModelSpec, model_spec
from ..seeding import seed_int
from ..tasks import TrialBatch, held_out, read_trials
from ..tasks.rendering import read_pools
from ..tasks.stimulus import PAPER, Stimulus
from .decoder import DecoderConfig, DecoderData, load_decoder, save_decoder, train_decoder
from .feedback import FeedbackConfig, feedback_table, motor_feedback, vectors_of
from .partners import partner_accuracy, setting_of
from .produce import (
    embed_sentences,
    label_sentences,
    produce_instructions,
    read_vectors,
    write_vectors,
)

log = logging.getLogger(__name__)

# Preference order for the default instructing model: the best SBERT-family models of
# the paper first (SBERTNET (L) 83 %, SBERTNET 79 % zero-shot), then the offline MiniLM.
SBERT_PREFERENCE = ("sbertnet_l", "sbertnet", "sbertnet_minilm")


def check_instructor(name: str, registry: Mapping[str, LanguageModel]) -> ModelSpec:
    """The spec of an instructing/partner model, or ValueError saying why it cannot be
    one (rule models hear no instructions; tuned models changed their language model,
    so the frozen embedding pipeline would not be what they hear)."""
    spec = model_spec(name, registry)
    if not spec.instructed:
        raise ValueError(f"production.instructor {name!r} is a rule model; language production "
                         "needs an instructed model (a language model name, or <lm>_mlp)")
    if spec.tuned:
        raise ValueError(f"production.instructor {name!r} is a tuned model: its language model "
                         "was trained, so produced sentences cannot be re-embedded from the "
                         "frozen cache pipeline; use the untuned model")
    return spec


def default_instructor(models: Sequence[str], registry: Mapping[str, LanguageModel]) -> str:
    """The best SBERT-family instructed model among ``models`` (by the paper's ranking,
    linear before MLP heads), else the first instructed untuned model."""
    usable = []
    for name in models:
        try:
            usable.append((name, check_instructor(name, registry)))
        except ValueError:
            continue
    if not usable:
        raise ValueError("language production needs an instructed model in `models` "
                         "(or production.instructor)")
    def rank(item):
        name, spec = item
        lm_rank = SBERT_PREFERENCE.index(spec.lm) if spec.lm in SBERT_PREFERENCE else (
            len(SBERT_PREFERENCE) if spec.lm.startswith("sbert") else len(SBERT_PREFERENCE) + 1)
        return (lm_rank, spec.head != "linear", models.index(name))
    return min(usable, key=rank)[0]


def _load_instructed(path, device):
    model, meta = load_model(path, device)
    if not is_instructed(model):
        raise ValueError(f"{path}: language production needs an instructed model")
    return model, meta


def decoder_job(instructor_path, embeddings_path, pool_paths: Mapping[str, str], settings,
                base_seed: int, holdout: str, model: str, seed: int, out_model, out_log,
                device="cpu", stimulus: Stimulus = PAPER) -> pd.DataFrame:
    """Train the Production-RNN of one instructing model (its training tasks)."""
    config = DecoderConfig.from_mapping(settings)
    instructor, meta = _load_instructed(instructor_path, device)
    tasks = list(meta["training_tasks"])
    rows, _ = read_embeddings(embeddings_path)
    data = DecoderData(tasks, read_pools({t: pool_paths[t] for t in tasks}, stimulus),
                       instruction_rows(rows, tasks, "train"), [str(t) for t in rows["text"]])
    decoder, vocab, table = train_decoder(
        instructor, data, config, seed_int(base_seed, "decoder", holdout, model, seed),
        seed_int(base_seed, "decoder-noise", holdout, model, seed), device)
    save_decoder(decoder, vocab, config, out_model, holdout=holdout, model=model, seed=seed,
                 training_tasks=tasks)
    for col, value in (("seed", np.int32(seed)), ("model", model), ("holdout", holdout)):
        table.insert(0, col, value)
    table = table.astype({"holdout": "string", "model": "string"})
    table.to_parquet(out_log, index=False)
    return table


def feedback_job(instructor_path, tasks: Sequence[str], pool_paths: Mapping[str, str], settings,
                 base_seed: int, holdout: str, model: str, seed: int, out, out_log,
                 device="cpu", stimulus: Stimulus = PAPER) -> pd.DataFrame:
    """Motor feedback for every task of ``tasks`` on one instructing model."""
    config = FeedbackConfig.from_mapping(settings)
    instructor, _ = _load_instructed(instructor_path, device)
    before = {k: v.clone() for k, v in instructor.state_dict().items()}
    pools = read_pools(pool_paths, stimulus)
    tables, logs = [], []
    for task in tasks:
        vectors, history = motor_feedback(
            instructor, task, pools[task], config,
            seed_int(base_seed, "feedback", holdout, model, seed, task),
            seed_int(base_seed, "feedback-noise", holdout, model, seed, task), device)
        tables.append(feedback_table(task, vectors, history))
        logs.append(history)
    after = instructor.state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        raise RuntimeError("motor feedback changed a model weight")  # guarded by the tests too
    table = pd.concat(tables, ignore_index=True)
    write_vectors(table, "embedding", out)
    pd.concat(logs, ignore_index=True).to_parquet(out_log, index=False)
    return table


def produce_job(instructor_path, decoder_path, feedback_path, corpus_path,
                pool_paths: Mapping[str, str], n: int, base_seed: int, holdout: str, model: str,
                seed: int, out, custom=None, device="cpu", stimulus: Stimulus = PAPER) -> pd.DataFrame:
    """Decode ``n`` instructions per task from the states driven by the task's inferred
    vectors (the converged ones; all of them if none converged), and label them."""
    instructor, _ = _load_instructed(instructor_path, device)
    decoder, vocab, saved = load_decoder(decoder_path, device)
    frame, matrix = read_vectors(feedback_path)
    frame["embedding"] = list(matrix)
    frames = []
    for task in pd.unique(frame["task"]):
        rows = frame[frame["task"] == task]
        use = rows["converged"].to_numpy(bool) if rows["converged"].any() else np.ones(len(rows), bool)
        produced = produce_instructions(
            instructor, decoder, vocab, str(task), vectors_of(frame, str(task)),
            TrialBatch.from_frame(read_trials(pool_paths[str(task)]), stimulus=stimulus), n,
            seed_int(base_seed, "produce", holdout, model, seed, task),
            seed_int(base_seed, "produce-noise", holdout, model, seed, task),
            saved["config"]["max_length"], device)
        produced["vector"] = rows["vector"].to_numpy()[use][produced["vector"].to_numpy()]
        produced["from_converged"] = bool(rows["converged"].any())
        frames.append(produced)
    produced = pd.concat(frames, ignore_index=True)
    labelled = label_sentences(produced, pd.read_parquet(corpus_path))
    labelled.insert(0, "instructor_seed", np.int32(seed))
    labelled.insert(0, "model", pd.array([model] * len(labelled), dtype="string"))
    labelled.insert(0, "instructor_holdout", pd.array([holdout] * len(labelled), dtype="string"))
    labelled["instructor_heldout"] = labelled["task"].isin(held_out(holdout, custom)).to_numpy()
    labelled.to_parquet(out, index=False)
    return labelled


def embed_produced_job(produced_path, language_model: LanguageModel, corpus_path, out,
                       batch_size: int = 64, device="cpu") -> pd.DataFrame:
    """Re-embed the produced sentences with the corpus's pipeline (pooled vectors)."""
    produced = pd.read_parquet(produced_path)
    corpus = pd.read_parquet(corpus_path)
    loaded = None if language_model.kind == "bow" else load_language_model(language_model, device)
    pooled = embed_sentences(language_model, list(produced["text"]), corpus, batch_size, device,
                             loaded)
    table = produced[["task", "index", "text", "novel"]].copy()
    table["embedding"] = list(pooled)
    write_vectors(table, "embedding", out)
    return table


def partner_job(partner_path, embedded_path, feedback_path, pool_paths: Mapping[str, str],
                instructor_holdout: str, partner_holdout: str, partner_seed: int, model: str,
                settings: Mapping, base_seed: int, out, custom=None, device="cpu",
                stimulus: Stimulus = PAPER) -> pd.DataFrame:
    """One partner model performs every produced task from each source."""
    partner, meta = _load_instructed(partner_path, device)
    rows, embedded = read_vectors(embedded_path)
    frame, vectors = read_vectors(feedback_path)
    frame["embedding"] = list(vectors)
    tasks = [str(t) for t in pd.unique(rows["task"])]
    sentence_embeddings = {t: embedded[(rows["task"] == t).to_numpy()] for t in tasks}
    novel = {t: rows.loc[rows["task"] == t, "novel"].to_numpy(bool) for t in tasks}
    inferred = {t: vectors_of(frame, t) for t in tasks}
    table = partner_accuracy(
        partner, tasks, read_pools({t: pool_paths[t] for t in tasks}, stimulus), sentence_embeddings,
        novel, inferred, int(settings["batch_size"]), int(settings["repeats"]),
        seed_int(base_seed, "partners", instructor_holdout, partner_holdout, model, partner_seed),
        device)
    inst_out = set(held_out(instructor_holdout, custom))
    part_out = set(held_out(partner_holdout, custom))
    table.insert(0, "partner_seed", np.int32(partner_seed))
    table.insert(0, "partner_holdout", pd.array([partner_holdout] * len(table), dtype="string"))
    table.insert(0, "instructor_holdout", pd.array([instructor_holdout] * len(table), dtype="string"))
    table.insert(0, "model", pd.array([model] * len(table), dtype="string"))
    table["setting"] = pd.array([setting_of(t in inst_out, t in part_out) for t in table["task"]],
                                dtype="string")
    table.to_parquet(out, index=False)
    return table


def production_tables(produced_paths: Sequence, partner_paths: Sequence, out) -> dict:
    """Stack the per-instructor produced sentences and per-partner results and write
    the summary tables (``out`` has attributes or keys produced, partners, novel,
    confusion, summary, welch)."""
    from .partners import partner_summary, partner_welch
    from .produce import confusion_matrix

    get = (lambda k: out[k]) if isinstance(out, Mapping) else (lambda k: getattr(out, k))
    produced = pd.concat([pd.read_parquet(p) for p in produced_paths], ignore_index=True)
    partners = (pd.concat([pd.read_parquet(p) for p in partner_paths], ignore_index=True)
                if partner_paths else pd.DataFrame(
                    columns=["model", "instructor_holdout", "partner_holdout", "partner_seed",
                             "task", "source", "scoring", "repeat", "n_sources", "accuracy",
                             "setting"]))
    novel = produced.groupby(["instructor_holdout", "model", "instructor_seed"], observed=True).agg(
        sentences=("novel", "size"), novel=("novel", "sum"), fraction_novel=("novel", "mean"),
    ).reset_index()
    confusion = []
    for keys, g in produced.groupby(["instructor_holdout", "model", "instructor_seed"], observed=True):
        m = confusion_matrix(g).rename_axis(index="task", columns="reproduced").stack()
        m = m.rename("fraction").reset_index()
        m.insert(0, "instructor_seed", keys[2])
        m.insert(0, "model", keys[1])
        m.insert(0, "instructor_holdout", keys[0])
        confusion.append(m[m["fraction"] > 0])
    tables = {
        "produced": produced, "partners": partners, "novel": novel,
        "confusion": pd.concat(confusion, ignore_index=True).astype(
            {"instructor_holdout": "string", "model": "string", "task": "string",
             "reproduced": "string"}),
        "summary": partner_summary(partners), "welch": partner_welch(partners),
    }
    for name, table in tables.items():
        table.to_parquet(get(name), index=False)
    return tables


def check_production_config(config: Mapping, registry: Mapping[str, LanguageModel]) -> None:
    """ValueError naming the key if the ``production`` section names unknown things or
    holdout groups and tasks outside the study's task set (``tasks``). ``config`` has the
    schema's defaults (instructnet.config.check_config, which calls this)."""
    from ..tasks import Study

    prod = config["production"]
    if not prod["enabled"]:
        return
    study = Study.from_config(config)
    for h in prod["holdouts"]:
        study.held_out(h, "production.holdouts")
    for h in prod["partners"]["holdouts"]:
        study.held_out(h, "production.partners.holdouts")
    tasks = study.production_tasks(prod["tasks"])
    study.example_task(prod["example_task"], tasks)
    instructor = prod["instructor"]
    if instructor:
        spec = check_instructor(instructor, registry)
        if spec.lm not in config["language_models"]:
            raise ValueError(f"production.instructor {instructor!r} needs language model "
                             f"{spec.lm!r} in language_models")
    else:
        default_instructor(list(config["models"]), registry)
    seed = prod["instructor_seed"]
    if seed in prod["partners"]["seeds"]:
        raise ValueError(f"production.partners.seeds must differ from the instructing model's "
                         f"seed (production.instructor_seed = {seed})")
    DecoderConfig.from_mapping(prod["decoder"])
    FeedbackConfig.from_mapping(prod["feedback"])
