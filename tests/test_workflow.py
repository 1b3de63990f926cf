"""The real workflow, end to end, through the snakemake CLI on config/test.yaml."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from instructnet.tasks import TASKS, read_trials

pytestmark = pytest.mark.workflow
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(repo, workdir, *args, check=True, config="test.yaml"):
    cmd = [SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "config" / config), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def run(local_test_run):
    return local_test_run  # conftest.py: one local run per session, shared with test_slurm


def test_dry_run_lists_the_dag(repo, tmp_path):
    out = snakemake(repo, tmp_path, "-n", "--quiet", "rules").stdout
    assert "trial_pool" in out and "task_examples" in out


def test_workflow_builds_pools_and_figure(run):
    for pool, n in (("train", 16), ("eval", 8)):
        files = sorted((run / "results" / "trials" / pool).glob("*.parquet"))
        assert len(files) == len(TASKS)
        df = read_trials(run / "results" / "trials" / pool / "ConAntiDM.parquet")
        assert len(df) == n and set(df["task"]) == {"ConAntiDM"}
    png = run / "results" / "figures" / "task_examples.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (run / "logs" / "trials" / "train" / "DM.log").exists()


def test_workflow_embeds_the_corpus_once_per_model(run):
    from instructnet.embeddings import read_embeddings, read_layers

    rows, vectors = read_embeddings(run / "results" / "embeddings" / "sbertnet_minilm.parquet")
    assert vectors.shape == (1000, 384) and set(rows["split"]) == {"train", "validation"}
    layer_rows, layers = read_layers(run / "results" / "embeddings" / "sbertnet_minilm_layers.parquet")
    assert layers.shape == (7, 1000, 384)
    _, bow = read_embeddings(run / "results" / "embeddings" / "bownet.parquet")
    vocab = pd.read_parquet(run / "results" / "instructions" / "vocabulary.parquet")
    assert bow.shape == (1000, len(vocab)) and set(bow.ravel()) == {0.0, 1.0}


def test_workflow_trains_each_model(run):
    from instructnet.models.io import load_model

    for model in ("simplenet", "sbertnet_minilm"):
        folder = run / "results" / "models" / "swap9" / model / "seed0"
        net, meta = load_model(folder / "model.pt")
        assert meta["holdout"] == "swap9" and len(meta["training_tasks"]) == 45
        assert "AntiDMMod1" not in meta["training_tasks"]
        log = pd.read_parquet(folder / "train_log.parquet")
        assert set(log["task"]) == set(meta["training_tasks"]) and (log["epoch"] == 1).all()
        assert not (folder / "checkpoint.pt").exists()


def test_workflow_evaluates_and_draws_figure_2(run):
    tables = run / "results" / "tables"
    heldout = pd.read_parquet(tables / "heldout.parquet")
    assert set(heldout["task"]) == {"AntiGo", "Dur1", "ConDM", "AntiDMMod1", "AntiMultiDur2"}
    assert set(heldout["batch"]) == {0, 1, 2} and set(heldout["model"]) == {"simplenet", "sbertnet_minilm"}
    zero_shot = pd.read_parquet(tables / "zero_shot.parquet")
    assert set(heldout["scoring"]) == set(zero_shot["scoring"]) == {"strict", "paper"}
    key = ["model", "task", "scoring"]
    first = heldout[heldout["batch"] == 0].groupby(key)["accuracy"].mean()
    assert zero_shot.set_index(key)["accuracy"].sort_index().equals(first.sort_index())
    wide = zero_shot.pivot_table(index=["model", "task"], columns="scoring", values="accuracy")
    assert (wide["paper"] >= wide["strict"]).all()  # the batch-level rule is never stricter
    swapped = pd.read_parquet(tables / "swapped.parquet")
    assert set(swapped["model"]) == {"sbertnet_minilm"}  # instructed models only
    validation = pd.read_parquet(tables / "validation.parquet")
    by_holdout = validation.groupby("holdout", observed=True)["task"].nunique()
    assert by_holdout.to_dict() == {"multitask": 50, "swap9": 45}  # the tasks each trained on
    assert "test.yaml" in (tables / "fidelity.md").read_text().splitlines()[0]
    for name in ("fig2a_learning_curves", "fig2b_distribution", "fig2c_swapped", "fig2f_clause",
                 "supp_training_curves", "supp_validation", "supp_welch_heatmaps"):
        assert (run / "results" / "figures" / f"{name}.png").stat().st_size > 0
        assert (run / "results" / "figures" / f"{name}.pdf").stat().st_size > 0


def test_workflow_produces_language_and_draws_figure_5(run):
    from instructnet.models.io import load_model
    from instructnet.production import read_vectors

    tables = run / "results" / "tables"
    produced = pd.read_parquet(tables / "production_produced.parquet")
    assert set(produced["instructor_holdout"]) == {"multitask", "swap9"}
    assert set(produced["task"]) == {"AntiDMMod1", "DMMod1"} and len(produced) == 2 * 2 * 4
    assert produced["novel"].dtype == bool and (produced["n_tokens"] <= 12).all()
    folder = run / "results" / "production" / "swap9" / "sbertnet_minilm" / "seed0"
    feedback, vectors = read_vectors(folder / "feedback.parquet")
    assert vectors.shape == (2 * 2, 64) and set(feedback["task"]) == {"AntiDMMod1", "DMMod1"}
    rows, embedded = read_vectors(folder / "produced_embedded.parquet")
    assert embedded.shape == (8, 384)
    partners = pd.read_parquet(tables / "production_partners.parquet")
    assert set(partners["source"]) >= {"instructions", "embedding"}
    assert set(partners["partner_seed"]) == {1}
    assert set(partners["setting"]) == {"partner trained on task", "task held out from partner",
                                        "task held out from instructor", "double holdout"}
    _, meta = load_model(run / "results" / "models" / "swap9" / "sbertnet_minilm" / "seed1" / "model.pt")
    assert meta["seed"] == 1
    assert len(pd.read_parquet(tables / "production_welch.parquet"))
    for name in ("fig5d_examples", "fig5e_confusion", "fig5f_partners"):
        assert (run / "results" / "figures" / f"{name}.png").stat().st_size > 0
        assert (run / "results" / "figures" / f"{name}.pdf").stat().st_size > 0


def test_workflow_analyses_representations_and_draws_figures_3_4(run):
    from instructnet.analysis.ccgp import DICHOTOMIES

    res = run / "results"
    ccgp = pd.read_parquet(res / "ccgp" / "swap9" / "sbertnet_minilm" / "seed0.parquet")
    # the whole hierarchy: 7 MiniLM layers, the task embedding, the RNN
    assert list(ccgp.drop_duplicates("layer").sort_values("depth")["layer"]) == [
        *(f"lm{k}" for k in range(7)), "embedding", "rnn"]
    assert set(ccgp["dichotomy"]) == set(DICHOTOMIES) and ccgp["score"].between(0, 1).all()
    assert set(ccgp.loc[ccgp["variant"] == "swapped", "task"]) <= {
        "AntiGo", "Dur1", "ConDM", "AntiDMMod1", "AntiMultiDur2"}
    rule = pd.read_parquet(res / "ccgp" / "swap9" / "simplenet" / "seed0.parquet")
    assert set(rule["layer"]) == {"rule", "embedding", "rnn"}
    summary = pd.read_parquet(res / "tables" / "ccgp_summary.parquet")
    assert {"heldout", "swapped", "all_tasks"} <= set(summary["condition"])
    pca = pd.read_parquet(res / "tables" / "pca.parquet")
    assert set(pca["task"]) == {"DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2"}
    units = res / "units" / "swap9" / "sbertnet_minilm" / "seed0"
    stats = pd.read_parquet(units / "unit_stats.parquet")
    assert set(stats["analysis"]) == {"go", "matching", "dm", "comp"}
    for name in ("fig3ad_pca", "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers", "fig4a_go_tuning",
                 "fig4b_matching", "fig4c_dm_contrast", "fig4d_comp", "supp_task_variance"):
        assert (res / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (res / "figures" / f"{name}.pdf").stat().st_size > 0


def test_report_has_every_figure_with_its_caption(repo, run):
    import zipfile

    snakemake(repo, run, "--report", "report.zip")
    with zipfile.ZipFile(run / "report.zip") as z:
        names = z.namelist()
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in names
                         if n.endswith((".html", ".js", ".json")))
    for png in sorted((run / "results" / "figures").glob("*.png")):
        assert any(n.endswith(png.name) for n in names), f"{png.name} missing from the report"
    for phrase in ("cross-condition", "Pro/Anti", "task variance", "Figure 2 of Riveland"):
        assert phrase in text, phrase


def test_paper_config_dag_lists_the_seven_language_models(repo, tmp_path):
    # one dry run (building the paper's DAG of ~12,000 jobs takes about a minute here)
    cmd = [SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(repo / "config" / "paper.yaml"), "-n"]
    listed = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    # the rule itself, not only embed_produced
    assert re.search(r"^rule embed:$", listed, re.MULTILINE)
    for lm in ("gptnet", "gptnet_xl", "bertnet", "sbertnet", "sbertnet_l", "clipnet_s", "bownet"):
        assert f"results/embeddings/{lm}.parquet" in listed
        assert f"results/models/swap0/{lm}/seed4/model.pt" in listed
    for name in ("fig2a_learning_curves", "fig2b_distribution", "fig2c_swapped", "fig2d_family",
                 "fig2e_tuned", "fig2f_clause", "supp_validation", "supp_welch_heatmaps",
                 # Figures 3 and 4 (workflow/rules/analysis.smk)
                 "fig3ad_pca", "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers", "fig4a_go_tuning",
                 "fig4b_matching", "fig4c_dm_contrast", "fig4d_comp", "supp_task_variance"):
        assert f"results/figures/{name}.png" in listed
    for name in ("fig5d_examples", "fig5e_confusion", "fig5f_partners"):
        assert f"results/figures/{name}.png" in listed
    assert "results/production/swap3/sbertnet_l/seed0/partners/multitask/seed4.parquet" in listed
    # the Con pools wait for the derived threshold table and its reference SIMPLENET
    assert "results/tasks/con_thresholds.parquet" in listed
    assert "results/models/nocon/simplenet/seed0/model.pt" in listed


def test_rerun_is_a_no_op_and_reruns_are_surgical(repo, run):
    out = snakemake(repo, run, "-n").stdout + snakemake(repo, run, "-n").stderr
    assert "Nothing to be done" in out
    # the same config file named otherwise (relative instead of absolute): no output
    # records how the command line spelled it
    import os

    relative = os.path.relpath(repo / "config" / "test.yaml")  # from the invocation directory
    cmd = [SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory", str(run),
           "--cores", "2", "-n", "--configfile", relative]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout
    first = (run / "results" / "tables" / "fidelity.md").read_text().splitlines()[0]
    assert "config/test.yaml" in first and str(repo) not in first  # relative, once
    target = run / "results" / "trials" / "eval" / "DMS.parquet"
    before = target.read_bytes()
    target.unlink()
    snakemake(repo, run, "results/trials/eval/DMS.parquet")
    assert target.read_bytes() == before  # same seed -> same bytes
    pd.read_parquet(target)


def test_bad_config_fails_naming_the_key(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (repo / "config" / "test.yaml").read_text().replace("holdouts: [swap9, multitask]", "holdouts: [swap99, multitask]")
    assert "swap99" in text
    bad.write_text(text)
    proc = subprocess.run([SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(bad), "-n"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "swap99" in proc.stdout + proc.stderr


# --- a study with a reduced task set (config/test_reduced.yaml) ---------------------------

# Go family + DM family without Con: no conditional task (no Figure 2f), no matching or
# COMP task (no Figure 4b, 4d); everything else is made.
REDUCED_FIGURES = {
    "task_examples", "fig2a_learning_curves", "fig2b_distribution", "fig2c_swapped",
    "supp_training_curves", "supp_validation", "supp_welch_heatmaps", "fig3ad_pca",
    "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers", "fig4a_go_tuning", "fig4c_dm_contrast",
    "supp_task_variance", "fig5d_examples", "fig5e_confusion", "fig5f_partners",
}


def reduced_study(repo):
    import yaml

    from instructnet.tasks import Study

    return Study.from_config(yaml.safe_load((repo / "config" / "test_reduced.yaml").read_text()))


@pytest.fixture(scope="module")
def reduced_run(repo, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reduced")
    snakemake(repo, workdir, config="test_reduced.yaml")
    return workdir


def test_reduced_task_set_builds_every_figure_it_supports(repo, reduced_run):
    study = reduced_study(repo)
    assert len(study.tasks) == 20
    res = reduced_run / "results"
    figures = res / "figures"
    assert {p.stem for p in figures.glob("*.png")} == REDUCED_FIGURES
    for name in REDUCED_FIGURES:
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        if name != "task_examples":
            assert (figures / f"{name}.pdf").stat().st_size > 0
    dry = snakemake(repo, reduced_run, "-n", config="test_reduced.yaml")
    assert "Nothing to be done" in dry.stdout + dry.stderr  # every target of rule all is made
    # only the study's pools; no Con task, so nothing derives Con thresholds
    for pool in ("train", "eval"):
        assert {p.stem for p in (res / "trials" / pool).glob("*.parquet")} == set(study.tasks)
    assert not (res / "tasks").exists() and not (res / "models" / "nocon").exists()


def test_reduced_task_set_restricts_every_stage(repo, reduced_run):
    from instructnet.models.io import load_model

    study = reduced_study(repo)
    res = reduced_run / "results"
    trained = study.training_tasks("reduced")
    for holdout, tasks in (("reduced", trained), ("multitask", study.tasks)):
        _, meta = load_model(res / "models" / holdout / "bownet" / "seed0" / "model.pt")
        assert meta["training_tasks"] == list(tasks) and "reached_criterion" in meta
    tables = res / "tables"
    assert set(pd.read_parquet(tables / "heldout.parquet")["task"]) == set(study.held_out("reduced"))
    validation = pd.read_parquet(tables / "validation.parquet")
    assert set(validation["task"]) == set(study.tasks)
    held = validation[validation["holdout"] == "reduced"]
    assert set(held["task"]) == set(trained)  # validation scores what each model trained on
    combined = pd.read_parquet(tables / "combined.parquet")
    assert set(combined["task"]) == set(study.held_out("reduced"))
    assert set(combined[["ref_a", "ref_b", "ref_c"]].to_numpy().ravel()) <= set(trained)
    for path in (res / "ccgp" / "reduced" / "bownet" / "seed0.parquet",
                 res / "ccgp" / "language" / "bownet.parquet"):
        ccgp = pd.read_parquet(path)
        assert set(ccgp["dichotomy"]) == set(study.dichotomies())
        assert set(ccgp["task"]) <= set(study.tasks)
    assert set(pd.read_parquet(tables / "pca.parquet")["task"]) == {
        "DMMod1", "AntiDMMod1", "DMMod2", "AntiDMMod2"}
    units = res / "units" / "reduced" / "bownet" / "seed0"
    assert set(pd.read_parquet(units / "unit_stats.parquet")["analysis"]) == {"go", "dm"}
    assert set(pd.read_parquet(units / "task_variance.parquet")["task"]) == set(study.tasks)
    produced = pd.read_parquet(tables / "production_produced.parquet")
    assert set(produced["task"]) == {"AntiDMMod1", "AntiGo"}
    clause = pd.read_parquet(tables / "clause_observed.parquet")
    assert (clause["n_conditional"] == 0).all()


def test_reduced_task_set_names_what_a_panel_lacks(repo, reduced_run):
    proc = snakemake(repo, reduced_run, "-n", "results/figures/fig4b_matching.png",
                     config="test_reduced.yaml", check=False)
    assert proc.returncode != 0
    assert ("fig4b_matching needs tasks that are not in the study: DMS, DNMS, DMC, DNMC"
            in proc.stdout + proc.stderr)
