"""The study's plan: every decision of what the workflow runs, from the validated config.

Pure functions of the config (after :func:`instructnet.config.check_config`, which fills
in the schema's defaults), unit-tested without Snakemake (tests/test_plan.py). The rule
files (workflow/rules/*.smk) stay declarative: they build one :class:`Plan` and ask it
for file lists, job inputs, params and resources. Snakemake decides *when* to run a job;
this module decides *what* there is to run:

* the study's task set and holdout groups (:class:`instructnet.tasks.Study`);
* the models a target may name, their specs and training settings;
* which evaluation test applies to which (holdout, model), and the tables it feeds;
* the Figure 2–5 panels and tables the config supports;
* language production's instructing models and partner pairs;
* packing groups and per-job cluster resources.

Paths are relative to the working directory, as in the rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from .config import config_path
from .embeddings import language_models
from .figures.panels import PANELS, panels
from .models.spec import RULE_MODELS, ModelSpec, model_spec
from .tasks import Study, held_out, holdout_registry
from .tasks.constants import CON_TASKS
from .tasks.stimulus import Stimulus

TESTS = ("heldout", "swapped", "combined", "input_only", "validation")
TABLES = (*TESTS, "heldout_family", "heldout_tuned", "train_logs")
T = "results/tables/"

# Cluster resources (read by the SLURM profile, profiles/slurm; local runs ignore
# mem_mb and runtime). Memory in MB and wall time in minutes per job, scaled by what the
# job holds: a model's training data and network are small (a paper-sized CPU job peaks
# at ~0.7 GB), so only jobs that load a language model grow with it: `embed`, and
# training/evaluation of `_tuned` models (the LM sits in the training loop). "Large"
# LMs are those whose source names xl/large (GPT-2 XL 1.5 B, BERT-large 340 M
# parameters). Each retry (`attempt` 2, 3, …) asks for proportionally more, so a job
# killed for time or memory gets more on its next try.
JOB_MEM_MB = {"base": 4000, "tuned": 12000, "tuned_large": 32000,
              "embed": 8000, "embed_large": 24000, "embed_bow": 2000}
JOB_RUNTIME_MIN = {"train": 480, "train_tuned": 720, "train_tuned_large": 1440,
                   "evaluate": 60, "evaluate_tuned": 120, "evaluate_tuned_large": 240,
                   "embed": 30, "embed_large": 60, "con_thresholds": 60,
                   # analyses and language production (paper scale, one GPU)
                   "representations": 60, "units": 60, "decoder": 720,
                   "motor_feedback": 720, "partner_eval": 60}


# Rules that run on CPUs only (no `gpu` resource): forward passes of a few hundred
# trials per task take seconds on a CPU, and a GPU would sit idle behind the Parquet
# writing.
CPU_STAGES = ("representations", "units")

# Threads: every compute rule runs on one thread (Snakemake's default) except
# train_packed and con_thresholds (2). On a fixed number of cores a 2-thread job waits
# until both are free: two 1-thread training jobs train ~1.3x more batches per second
# than one 2-thread job on 2 cores (bench train-step, batch 32: 86 ms at 1 thread, 56 ms
# at 2), and the short jobs (evaluate, representations, units, embed, language
# production) gain little from a second thread (default run: 181 CPU-s in 140 s of wall
# time over its 22 evaluations at 2 threads) while they would idle a core behind the
# last training job.

# Snakemake priority of language production's jobs and of its instructing model's
# training (Plan.train_priority); every other job has 0.
PRODUCTION_PRIORITY = 1


def _model_dir(holdout, model, seed) -> str:
    return f"results/models/{holdout}/{model}/seed{seed}"


@dataclass(frozen=True)
class PackedJob:
    """One packed training job (training.packing.by): ``seeds`` trains the config's seeds
    of one (holdout, model) together, ``models`` every packable model × seed of one
    holdout. It writes rule train's per-network files."""

    by: str
    packable: tuple[str, ...]
    seeds: tuple[int, ...]
    constraints: Mapping  # wildcard constraints of its wildcards

    def models(self, wildcards) -> list[str]:
        """The models the job with these wildcards trains."""
        return [wildcards.model] if self.by == "seeds" else list(self.packable)

    def outputs(self, name: str) -> list[str]:
        """Output patterns (wildcards holdout, and model when by seeds) of each member's
        file ``name`` (model.pt, train_log.parquet)."""
        models = ["{model}"] if self.by == "seeds" else self.packable
        return [f"{_model_dir('{holdout}', m, s)}/{name}" for m in models for s in self.seeds]

    @property
    def name(self) -> str:
        """The job's name as a path (its log and benchmark)."""
        return "{holdout}/{model}" if self.by == "seeds" else "{holdout}"


@dataclass(frozen=True)
class Production:
    """Language production's plan (METHODS §7): the instructing model, its seed and
    holdout groups, the production tasks and the partners."""

    model: str
    lm: str
    seed: int
    holdouts: list
    tasks: list
    example_task: str
    partners: Mapping


class Plan:
    """Every decision of what the workflow runs, from a validated ``config``;
    ``basedir``: the repository (shipped data files named in the config)."""

    def __init__(self, config: Mapping, basedir: str = "."):
        self.config = config
        self.basedir = basedir
        self.study = Study.from_config(config)
        self.language_models = language_models(config["language_model_registry"])
        self.custom_holdouts = config["custom_holdouts"]
        self.holdout_names = list(holdout_registry(self.custom_holdouts))
        self.holdouts = list(config["holdouts"])
        self.models = list(config["models"])
        self.seeds = list(config["training"]["seeds"])
        self.pools = list(config["trials"]["pools"])
        # the stimulus geometry as plain settings: a param of every rule that renders
        # trials, so that changing trials.convention reruns exactly those
        self.stimulus = Stimulus.from_config(config["trials"]).settings()
        self.eval = config["evaluation"]
        self.tests = list(self.eval["tests"])
        self.analysis = config["analysis"]
        self.held = {h: list(held_out(h, self.custom_holdouts)) for h in self.holdout_names}

    # ------------------------------------------------------------------ models
    @cached_property
    def model_specs(self) -> dict[str, ModelSpec]:
        """Every model name a target may ask for: rule models and, per language model,
        the linear, MLP and tuned variants (so that e.g. a tuned-model figure can be
        requested explicitly even when ``models`` lists no tuned model)."""
        lms = self.language_models
        names = [*RULE_MODELS, *self.models]
        names += [f"{lm}{suffix}" for lm in lms for suffix in ("", "_mlp")]
        names += [f"{lm}_tuned" for lm, entry in lms.items() if entry.kind != "bow"]
        norm = self.config["training"]["embedding_norm"]
        return {name: model_spec(name, lms, norm) for name in names}

    def spec(self, model: str) -> ModelSpec:
        return self.model_specs[model]

    def wildcard_constraints(self) -> dict[str, str]:
        """Every wildcard of the rules and what it may be (workflow/rules/common.smk)."""
        return {
            "task": "|".join(self.study.tasks),  # only the study's pools are made
            "pool": "|".join(self.pools),
            "lm": "|".join(self.language_models),
            "holdout": "|".join(self.holdout_names),
            "pholdout": "|".join(self.holdout_names),  # a production partner's holdout
            "model": "|".join(self.model_specs) or "(?!)",
            "seed": r"\d+",
            "pseed": r"\d+",
            "test": "|".join(TESTS),
            "name": "|".join(TABLES),  # the stacked tables of rule collect
            "figure": "|".join(PANELS),
        }

    def training_tasks(self, holdout: str) -> list[str]:
        """Tasks a model of ``holdout`` trains on: the study's minus the held-out ones."""
        return list(self.study.training_tasks(holdout))

    def train_settings(self, model: str) -> dict:
        """The training settings of a model (GPT language models: their own criterion)."""
        settings = dict(self.config["training"])
        settings.pop("packing", None)  # how jobs are grouped, not a training setting
        settings.pop("embedding_norm", None)  # part of the model spec
        gpt_threshold = settings.pop("threshold_gpt", None)
        if self.spec(model).gpt and gpt_threshold is not None:
            settings["threshold"] = gpt_threshold
        return settings

    def embedding_input(self, model: str) -> dict[str, str]:
        """{"embeddings": table} for an instructed model, else {}."""
        spec = self.spec(model)
        return {"embeddings": f"results/embeddings/{spec.lm}.parquet"} if spec.instructed else {}

    def train_inputs(self, holdout: str, model: str) -> dict:
        pools = [f"results/trials/train/{t}.parquet" for t in self.training_tasks(holdout)]
        return {"pools": pools, **self.embedding_input(model)}

    def train_priority(self, model: str) -> int:
        """Scheduling priority of a train job on a fixed number of cores (Snakemake's
        `priority`; cluster runs submit everything at once and ignore it). Language
        production's chain (decoder, motor feedback, produce, re-embed, partners,
        tables, Figure 5) runs one job after another from the instructing model's
        networks, so that model trains first and its chain, at the same priority, fills
        cores beside the other models' training instead of running alone after it."""
        prod = self.production
        return self.first_priority if prod is not None and model == prod.model else 0

    def embed_priority(self, lm: str) -> int:
        """The corpus and the instructing model's language model come first, so that
        its training is ready to start as soon as the trial pools are (train_priority)."""
        prod = self.production
        return self.first_priority if prod is not None and lm == prod.lm else 0

    @property
    def first_priority(self) -> int:
        """Priority of what the instructing model waits for (the corpus; 0 when
        production is off)."""
        return PRODUCTION_PRIORITY if self.production is not None else 0

    def trained_models(self) -> list[str]:
        """model.pt of every configured holdout × model × seed."""
        return [f"{_model_dir(h, m, s)}/model.pt"
                for h in self.holdouts for m in self.models for s in self.seeds]

    # ----------------------------------------------------------------- packing
    @property
    def packing(self) -> Mapping:
        return self.config["training"]["packing"]

    @property
    def packed_models(self) -> list[str]:
        """Models packed training may take: the config's, never tuned ones."""
        return [m for m in self.models if not self.spec(m).tuned]

    def pack_constraints(self) -> dict[str, str]:
        return {"holdout": "|".join(map(re.escape, self.holdouts)),
                "model": "|".join(map(re.escape, self.packed_models)) or "(?!)"}

    @cached_property
    def packed_job(self) -> PackedJob | None:
        """The shape of rule train_packed's jobs, or None when nothing is packed
        (training.packing.by: none, or no packable model)."""
        if self.packing["by"] not in ("seeds", "models") or not self.packed_models:
            return None
        by, constraints = self.packing["by"], self.pack_constraints()
        if by == "models":
            del constraints["model"]
        return PackedJob(by, tuple(self.packed_models), tuple(self.seeds), constraints)

    def packed_members(self, models) -> list[tuple[str, int]]:
        return [(m, s) for m in models for s in self.seeds]

    def packed_inputs(self, holdout: str, models) -> dict:
        lms = sorted({self.spec(m).lm for m in models if self.spec(m).instructed})
        return {"pools": [f"results/trials/train/{t}.parquet"
                          for t in self.training_tasks(holdout)],
                "embeddings": [f"results/embeddings/{lm}.parquet" for lm in lms]}

    def packed_params(self, models) -> dict:
        """What scripts/train_packed.py needs, per member (model, seed): params of a
        packed rule, each a function of the job's wildcards (``models(wildcards)``: the
        models the job packs)."""
        return dict(
            members=lambda w: self.packed_members(models(w)),
            specs=lambda w: {m: self.spec(m) for m in models(w)},
            training=lambda w: {m: self.train_settings(m) for m in models(w)},
            tasks=lambda w: self.training_tasks(w.holdout),
            checkpoints=lambda w: [f"{_model_dir(w.holdout, m, s)}/checkpoint.pt"
                                   for m, s in self.packed_members(models(w))],
        )

    # ------------------------------------------------------------ trials, LMs
    def trial_pools(self) -> list[str]:
        """Every trial pool of every task of the study."""
        return [f"results/trials/{p}/{t}.parquet" for p in self.pools for t in self.study.tasks]

    def con_thresholds(self, task: str):
        """The threshold table is an input of the Con tasks' pools only: the shipped or a
        user's table, or ('derived') the one the con_thresholds rule derives."""
        if task not in CON_TASKS:
            return []
        table = self.config["trials"]["con_thresholds"]
        if table == "derived":
            return "results/tasks/con_thresholds.parquet"
        return config_path(table, self.basedir)

    def instructions(self) -> str:
        return config_path(self.config["instructions"], self.basedir)

    def embeddings(self) -> list[str]:
        """The embedding tables of every configured language model."""
        return [f"results/embeddings/{lm}{suffix}.parquet"
                for lm in self.config["language_models"] for suffix in ("", "_layers")]

    # -------------------------------------------------------------- evaluation
    def eval_tasks(self, holdout: str, test: str) -> list[str]:
        """Tasks a test scores (Study.evaluation_tasks): the trained tasks for
        validation, else the held-out tasks (combined: those with references among the
        training tasks)."""
        return list(self.study.evaluation_tasks(holdout, test))

    def eval_applies(self, holdout: str, model: str, test: str) -> bool:
        """Whether a test makes sense for this holdout group and model."""
        spec = self.spec(model)
        if test == "validation":
            return spec.instructed
        if not self.eval_tasks(holdout, test):
            return False
        return spec.instructed or test != "swapped"

    def eval_inputs(self, holdout: str, model: str, seed, test: str) -> dict:
        pools = [f"results/trials/eval/{t}.parquet" for t in self.eval_tasks(holdout, test)]
        return {"model": f"{_model_dir(holdout, model, seed)}/model.pt", "pools": pools,
                **self.embedding_input(model)}

    def eval_settings(self) -> dict:
        return {k: v for k, v in self.eval.items() if k != "tests"}

    def eval_files(self, test: str, holdouts=None, models=None) -> list[str]:
        """Every evaluation file of ``test`` over the grid (only where the test applies)."""
        return [f"results/eval/{h}/{m}/seed{s}/{test}.parquet"
                for h in (self.holdouts if holdouts is None else holdouts)
                for m in (self.models if models is None else models)
                for s in self.seeds if self.eval_applies(h, m, test)]

    def evaluations(self) -> list[str]:
        return [f for test in self.tests for f in self.eval_files(test)]

    # ---------------------------------------------------- tables and Figure 2
    @cached_property
    def swap_holdouts(self) -> list[str]:
        """Holdout groups of the swap panels: the config's, else the built-in groups
        that fit the study, else the config's groups that hold tasks out."""
        return ([h for h in self.holdouts if h.startswith("swap")]
                or list(self.study.builtin_holdouts("swap"))
                or [h for h in self.holdouts if self.held[h]])

    @cached_property
    def family_holdouts(self) -> list[str]:
        return list(self.study.builtin_holdouts("family"))

    @property
    def tuned(self) -> list[str]:
        return [m for m in self.models if m.endswith("_tuned")]

    @cached_property
    def tuned_pairs(self) -> list[str]:
        """Figure 2e compares tuned models with their untuned twins: those of the config,
        or, when it lists none (the panel was requested explicitly), the tuned variants
        of its instructed models."""
        tunable = [m for m in self.models if f"{m}_tuned" in self.model_specs]
        return (self.tuned + [m[: -len("_tuned")] for m in self.tuned]) or (
            tunable + [f"{m}_tuned" for m in tunable])

    def collected(self, name: str) -> list[str]:
        """Evaluation files behind results/tables/{name}.parquet."""
        if name == "heldout_family":
            return self.eval_files("heldout", holdouts=self.family_holdouts)
        if name == "heldout_tuned":
            return self.eval_files("heldout", holdouts=self.swap_holdouts, models=self.tuned_pairs)
        if name == "train_logs":
            return [f.replace("model.pt", "train_log.parquet") for f in self.trained_models()]
        return self.eval_files(name)

    def other_test_tables(self) -> list[str]:
        """The stacked tables of the configured tests other than heldout (rule statistics
        reads them beside heldout's)."""
        return [f"{T}{test}.parquet" for test in self.tests if test != "heldout"]

    def figure_inputs(self, figure: str) -> list[str]:
        """The tables a panel is drawn from (its tasks must be in the study), in the
        order of its :class:`~instructnet.figures.panels.Panel` ``tables``."""
        self.study.require_figure(figure)
        panel = PANELS[figure]
        folder = self.units_dir if panel.units else T.rstrip("/")
        return [f"{folder}/{table}.parquet" for table in panel.tables]

    def figure_settings(self, figure: str) -> dict:
        """The keyword arguments a panel is drawn with (its ``settings``): ``held``, the
        held-out tasks of the PCA holdout (Figure 3) or of the units holdout (Figure 4);
        ``model``, the units model; ``task``, production's example task; ``tasks``, the
        study's tasks."""
        panel = PANELS[figure]
        holdout = self.pca_holdout if panel.figure == 3 else self.units["holdout"]
        values = {"held": lambda: list(self.held.get(holdout, [])),
                  "model": lambda: self.units_model,
                  "task": lambda: self.production.example_task if self.production else None,
                  "tasks": lambda: list(self.study.tasks)}
        return {name: values[name]() for name in panel.settings}

    @staticmethod
    def figure_category(figure: str) -> str:
        """The report's category of a panel ("Figure 2" ...)."""
        return f"Figure {PANELS[figure].figure}"

    @property
    def instructed(self) -> bool:
        return any(self.spec(m).instructed for m in self.models)

    def figure2_targets(self) -> list[str]:
        """The Figure 2 set the current config supports."""
        wanted = ["fig2a_learning_curves", "fig2b_distribution", "supp_training_curves",
                  "supp_welch_heatmaps"]
        if self.study.figure_applies("fig2f_clause"):
            wanted.append("fig2f_clause")
        if "swapped" in self.tests and self.instructed:
            wanted.append("fig2c_swapped")
        if any(h.startswith("family") for h in self.holdouts):
            wanted.append("fig2d_family")
        if self.tuned:
            wanted.append("fig2e_tuned")
        if "validation" in self.tests and self.instructed:
            wanted.append("supp_validation")
        return [f"results/figures/{name}.png" for name in wanted] + [
            T + "fidelity.md", T + "zero_shot_summary.parquet"]

    def fidelity_inputs(self) -> dict:
        """The fidelity table, and where the run has them the CCGP and zero-shot tables
        (r of Figure 3e) and the partner summary (Figure 5) for the headlines that are
        not per model."""
        inputs = {"table": T + "fidelity.parquet"}
        if "results/figures/fig3e_ccgp_zero_shot.png" in self.analysis_targets():
            inputs["ccgp"] = T + "ccgp.parquet"
            inputs["zero_shot"] = T + "zero_shot.parquet"
        if self.production:
            inputs["partners"] = T + "production_summary.parquet"
        return inputs

    # ------------------------------------------------------ Figures 3 and 4
    @property
    def pca_holdout(self) -> str:
        return self.analysis["pca_holdout"]

    @property
    def units(self) -> Mapping:
        return self.analysis["units"]

    @cached_property
    def units_model(self) -> str:
        """The model of the single-unit analyses: the config's, else the first
        instructed model, else the first model."""
        return self.units["model"] or next(
            (m for m in self.models if self.spec(m).instructed),
            self.models[0] if self.models else "simplenet")

    @property
    def units_dir(self) -> str:
        return f"results/units/{self.units['holdout']}/{self.units_model}/seed{self.seeds[0]}"

    @cached_property
    def dichotomies(self):
        return self.study.dichotomies()

    def model_inputs(self, holdout: str, model: str, seed) -> dict:
        """A trained model, the evaluation pools of every study task, its embeddings."""
        return {"model": f"{_model_dir(holdout, model, seed)}/model.pt",
                "pools": [f"results/trials/eval/{t}.parquet" for t in self.study.tasks],
                **self.embedding_input(model)}

    def ccgp_inputs(self, holdout: str, model: str, seed) -> dict:
        spec = self.spec(model)
        inputs = {"reps": f"results/representations/{holdout}/{model}/seed{seed}.parquet"}
        if spec.instructed:
            inputs["language"] = f"results/ccgp/language/{spec.lm}.parquet"
        return inputs

    def ccgp_files(self) -> list[str]:
        return [f"results/ccgp/{h}/{m}/seed{s}.parquet"
                for h in self.holdouts for m in self.models for s in self.seeds]

    def pca_models(self) -> list[tuple]:
        return [(self.pca_holdout, m, self.seeds[0]) for m in self.models]

    def pca_inputs(self) -> list[str]:
        self.study.require_figure("fig3ad_pca")  # its four tasks must be in the study
        return [f"results/representations/{h}/{m}/seed{s}.parquet"
                for h, m, s in self.pca_models()]

    def analysis_targets(self) -> list[str]:
        """The Figure 3/4 panels and tables the current config and study support
        (panels whose tasks are not in the study are left out: Study.figure_applies);
        none with analysis.enabled false."""
        wanted = []
        if not self.analysis["enabled"]:
            return wanted
        if self.dichotomies:
            wanted += [T + "ccgp.parquet", T + "ccgp_summary.parquet",
                       "results/figures/fig3f_ccgp_layers.png"]
            if [h for h in self.holdouts if self.held[h]] and "heldout" in self.tests:
                wanted.append("results/figures/fig3e_ccgp_zero_shot.png")
        if (self.pca_holdout in self.holdouts and self.models
                and self.study.figure_applies("fig3ad_pca")):
            wanted.append("results/figures/fig3ad_pca.png")
        if self.units["holdout"] in self.holdouts and self.models:
            wanted += [f"results/figures/{f}.png" for f in panels(4)
                       if self.study.figure_applies(f)]
        return wanted

    # ----------------------------------------------------------- production
    @cached_property
    def production(self) -> Production | None:
        """Language production's plan, or None when the stage is off (no production
        section, or enabled: false)."""
        prod = self.config["production"]
        if not prod["enabled"]:
            return None
        from .production.run import default_instructor

        model = prod["instructor"] or default_instructor(self.models, self.language_models)
        tasks = list(self.study.production_tasks(prod["tasks"]))
        return Production(model=model, lm=self.spec(model).lm, seed=prod["instructor_seed"],
                          holdouts=list(prod["holdouts"]), tasks=tasks,
                          example_task=self.study.example_task(prod["example_task"], tasks),
                          partners=prod["partners"])

    def partner_pairs(self) -> list[tuple[str, str]]:
        """(instructor holdout, partner holdout) pairs evaluated: a partner trained on
        every task hears every instructor; a partner with tasks held out hears the
        instructor trained on every task and the instructor with the same tasks held out
        (double holdout)."""
        prod = self.production
        return [(hi, hp) for hi in prod.holdouts for hp in prod.partners["holdouts"]
                if hi == hp or not self.held[hi] or not self.held[hp]]

    def produced_files(self) -> list[str]:
        prod = self.production
        return [f"results/production/{h}/{prod.model}/seed{prod.seed}/produced.parquet"
                for h in prod.holdouts]

    def partner_files(self) -> list[str]:
        prod = self.production
        return [f"results/production/{hi}/{prod.model}/seed{prod.seed}/partners/{hp}/seed{ps}.parquet"
                for hi, hp in self.partner_pairs() for ps in prod.partners["seeds"]]

    def production_targets(self) -> list[str]:
        """Figure 5 panels and tables (nothing when the stage is off)."""
        if not self.production:
            return []
        return [f"results/figures/{name}.png" for name in panels(5)] + [
            T + "production_summary.parquet", T + "production_novel.parquet"]

    # ------------------------------------------------------------ everything
    def all_targets(self) -> list[str]:
        """What `rule all` builds: every figure and table the config supports."""
        return [*self.trial_pools(), "results/figures/task_examples.png",
                "results/instructions/vocabulary.parquet", *self.embeddings(),
                *self.trained_models(), *self.evaluations(), *self.figure2_targets(),
                *self.analysis_targets(), *self.production_targets()]

    # ------------------------------------------------------------- resources
    def lm_is_large(self, lm: str) -> bool:
        """Whether a language model is one of the big ones (GPT-2 XL, *-large)."""
        source = (self.language_models[lm].source or "").lower()
        return "xl" in source or "large" in source or lm.endswith("_l")

    def model_class(self, model: str) -> str:
        """"" for models that never load their language model, else "tuned" or
        "tuned_large"."""
        spec = self.spec(model)
        if not spec.tuned:
            return ""
        return "tuned_large" if self.lm_is_large(spec.lm) else "tuned"

    def job_mem_mb(self, model: str, attempt: int) -> int:
        """Memory of a train/evaluate job."""
        return JOB_MEM_MB[self.model_class(model) or "base"] * attempt

    def runtime(self, stage: str, model: str, attempt: int) -> int:
        """Wall time (minutes) of a train/evaluate job."""
        cls = self.model_class(model)
        return JOB_RUNTIME_MIN[stage + (f"_{cls}" if cls else "")] * attempt

    def embed_mem_mb(self, lm: str, attempt: int) -> int:
        if self.language_models[lm].kind == "bow":
            return JOB_MEM_MB["embed_bow"] * attempt
        return JOB_MEM_MB["embed_large" if self.lm_is_large(lm) else "embed"] * attempt

    def embed_runtime(self, lm: str, attempt: int) -> int:
        return JOB_RUNTIME_MIN["embed_large" if self.lm_is_large(lm) else "embed"] * attempt

    def resources(self, stage: str) -> dict:
        """The `resources:` of one compute rule: ``gpu`` (1 where the job uses a GPU when
        one is present; :data:`CPU_STAGES` have none), ``mem_mb`` and ``runtime``
        (callables of wildcards and attempt: by model for train/evaluate, by language
        model for embed, else base memory and the stage's JOB_RUNTIME_MIN)."""
        if stage in ("train", "evaluate"):
            return {"gpu": 1,
                    "mem_mb": lambda w, attempt: self.job_mem_mb(w.model, attempt),
                    "runtime": lambda w, attempt: self.runtime(stage, w.model, attempt)}
        if stage == "embed":
            return {"gpu": lambda w: int(self.language_models[w.lm].kind != "bow"),
                    "mem_mb": lambda w, attempt: self.embed_mem_mb(w.lm, attempt),
                    "runtime": lambda w, attempt: self.embed_runtime(w.lm, attempt)}
        minutes = JOB_RUNTIME_MIN["train" if stage == "train_packed" else stage]
        return {**({} if stage in CPU_STAGES else {"gpu": 1}),
                "mem_mb": lambda w, attempt: JOB_MEM_MB["base"] * attempt,
                "runtime": lambda w, attempt: minutes * attempt}
