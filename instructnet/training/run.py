"""One training job: (holdout group, model, seed) → model.pt + train_log.parquet.

This is what the workflow's ``train`` rule calls; it can be called without Snakemake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..embeddings import LanguageModel, instruction_rows, read_embeddings
from ..models.io import save_model, tuned_model
from ..models.network import build_model
from ..models.spec import ModelSpec
from ..seeding import seed_int
from ..tasks.rendering import read_pools
from ..tasks.stimulus import PAPER, Stimulus
from .loop import TrainConfig, Trainer, TrainingConfigError, TrainingData, is_positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningConfig:
    """The tuned variant (METHODS §6): after ``from_epoch`` epochs the last ``blocks``
    transformer blocks join the trained parameters; ``lr`` for the RNN and maps,
    ``lm_lr`` (``lm_lr_gpt`` for GPT models) for the language model."""

    from_epoch: int = 30
    lr: float = 1e-4
    lm_lr: float = 3e-4
    lm_lr_gpt: float = 5e-5
    blocks: int = 3

    def __post_init__(self):
        for name in ("from_epoch", "blocks"):
            if not is_positive_int(getattr(self, name)):
                raise TrainingConfigError(
                    f"tuning.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("lr", "lm_lr", "lm_lr_gpt"):
            if not getattr(self, name) > 0:
                raise TrainingConfigError(f"tuning.{name} must be positive, got {getattr(self, name)!r}")


def train_job(
    spec: ModelSpec,
    holdout: str,
    seed: int,
    tasks: Sequence[str],
    pool_paths: Mapping[str, str | Path],
    config: TrainConfig,
    base_seed: int,
    model_out: str | Path,
    log_out: str | Path,
    embeddings_path: str | Path | None = None,
    hidden: int = 256,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    progress: bool = True,
    language_model: LanguageModel | None = None,
    tuning: TuningConfig | None = None,
    stimulus: Stimulus = PAPER,
) -> pd.DataFrame:
    """Train one model to criterion and write its weights and training log. Trials are
    rendered with ``stimulus`` (``trials.convention``), recorded in the model file.

    A tuned model (``spec.tuned``) first trains ``tuning.from_epoch`` epochs on the
    cached embeddings (the frozen language model gives the same vectors), then its
    language model's last blocks join the trained parameters; each phase has its own
    checkpoint, so a killed job resumes in either.
    """
    label = f"{holdout}/{spec.name}/seed{seed}"
    pools = read_pools({t: pool_paths[t] for t in tasks}, stimulus)
    embeddings = sentences = rows = None
    if spec.instructed:
        rows, vectors = read_embeddings(embeddings_path)
        embeddings = torch.tensor(vectors)
        sentences = instruction_rows(rows, tasks, "train")
    data = TrainingData(tasks, pools, sentences)
    data_seed = seed_int(base_seed, "train", holdout, spec.name, seed)
    # a tuned model starts as its language model's plain model would
    init_name = spec.lm if spec.tuned else spec.name
    model = build_model(spec, seed_int(base_seed, "init", init_name, seed), embeddings, hidden,
                        norm_rows=sentences.values() if sentences else None)
    checkpoint = Path(checkpoint) if checkpoint else None
    meta = {}
    if spec.tuned:
        tuning = tuning or TuningConfig()
        if language_model is None:
            raise ValueError(f"{label}: a tuned model needs its language model's entry")
        if tuning.from_epoch >= config.max_epochs:
            raise TrainingConfigError(
                f"tuning.from_epoch ({tuning.from_epoch}) must be below training.max_epochs "
                f"({config.max_epochs})"
            )
        # the first phase is not the end of training: no last-epochs step in it
        frozen = replace(config, min_epochs=tuning.from_epoch, max_epochs=tuning.from_epoch,
                         lr_final_steps=())
        first = Trainer(model, data, frozen, data_seed, device, label)
        first.fit(checkpoint, progress=progress, final=False)
        texts = [str(t) for t in rows["text"]]
        model = tuned_model(first.model, language_model, texts, tuning.blocks, device)
        lm_lr = tuning.lm_lr_gpt if spec.gpt else tuning.lm_lr
        lm_params = model.encoder.language_parameters()
        lm_ids = {id(p) for p in lm_params}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in lm_ids]
        trainer = Trainer(model, data, replace(config, lr=tuning.lr), data_seed + 1, device,
                          label, param_groups=[{"params": rest, "lr": tuning.lr},
                                               {"params": lm_params, "lr": lm_lr}],
                          start_epoch=first.epoch)
        trainer.rows = list(first.rows)
        phase_checkpoint = checkpoint.with_name(checkpoint.name + ".tuned") if checkpoint else None
        meta = {"language_model": asdict(language_model), "texts": texts, "tuning": asdict(tuning)}
    else:
        trainer = Trainer(model, data, config, data_seed, device, label)
        phase_checkpoint = checkpoint
    table = trainer.fit(phase_checkpoint, progress=progress)
    table.insert(0, "seed", np.int32(seed))
    table.insert(0, "model", spec.name)
    table.insert(0, "holdout", holdout)
    table = table.astype({"holdout": "string", "model": "string"})
    save_model(trainer.model.cpu(), spec, model_out, holdout=holdout, seed=seed,
               training_tasks=list(tasks), train_config=asdict(config), epochs=trainer.epoch,
               stimulus=stimulus.settings(),
               reached_criterion=trainer.reached_criterion, **meta)
    table.to_parquet(log_out, index=False)
    for path in (checkpoint, phase_checkpoint):
        if path is not None:
            Path(path).unlink(missing_ok=True)
    return table
