"""A study's task set (config key `tasks`) and what applies to it, without Snakemake."""

import pytest
import yaml

from instructnet.analysis.ccgp import ccgp_scores
from instructnet.config import ConfigError, check_config
from instructnet.tasks import (
    CONDITIONAL_TASKS,
    FAMILIES,
    HOLDOUTS,
    STRUCTURE,
    TASKS,
    Study,
    StudyError,
    compositional_references,
    parse_tasks,
    training_tasks,
)
from instructnet.tasks.constants import DICHOTOMIES, UnknownTaskError
from instructnet.tasks.holdouts import UnknownHoldoutError

GO_DM = ["family:Go", "DM", "AntiDM", "MultiDM", "AntiMultiDM", "DMMod1", "AntiDMMod1",
         "DMMod2", "AntiDMMod2"]
CUSTOM = {"reduced": ["AntiGo", "RTGoMod1", "AntiDMMod1", "MultiDM"]}


@pytest.fixture
def reduced():
    return Study(GO_DM, CUSTOM)


# --- the task set -------------------------------------------------------------------------


def test_all_is_the_fifty_tasks():
    assert parse_tasks("all") == parse_tasks(None) == TASKS
    assert Study().full and Study.from_config({}).tasks == TASKS


def test_families_and_names_give_canonical_order():
    tasks = parse_tasks(["AntiDM", "family:Matching", "Go"])
    assert tasks == ("Go", "AntiDM", "DMS", "DNMS", "DMC", "DNMC")
    assert parse_tasks(GO_DM) == FAMILIES["Go"] + FAMILIES["DM"][:8]
    assert not Study(GO_DM).full


@pytest.mark.parametrize("spec, error, message", [
    (["Go", "Gone"], UnknownTaskError, "tasks: unknown task 'Gone'"),
    (["Matching"], UnknownTaskError, "family:Matching"),
    (["family:Foo"], StudyError, "unknown task family 'Foo'"),
    (["Go", "family:Go"], StudyError, "Go named more than once"),
    ([], StudyError, "non-empty list"),
    ("some", StudyError, "'all' or a non-empty list"),
])
def test_bad_task_sets_name_the_culprit(spec, error, message):
    with pytest.raises(error, match=message):
        parse_tasks(spec)


# --- holdout groups -----------------------------------------------------------------------


def test_full_study_keeps_every_group_as_before():
    study = Study()
    for name in HOLDOUTS:
        assert study.training_tasks(name) == training_tasks(name)
    assert study.builtin_holdouts("swap") == [f"swap{i}" for i in range(10)]
    assert study.builtin_holdouts("family") == [f"family{i}" for i in range(12)]


def test_groups_must_lie_inside_the_study(reduced):
    with pytest.raises(StudyError, match=r"holdouts: holdout group 'swap9' holds out tasks that "
                                         r"are not in the study: Dur1, ConDM, AntiMultiDur2"):
        reduced.held_out("swap9", "holdouts")
    assert not reduced.fits("swap9") and reduced.fits("reduced") and reduced.fits("multitask")
    with pytest.raises(UnknownHoldoutError, match="unknown holdout group 'swapp9'"):
        reduced.held_out("swapp9")
    assert reduced.builtin_holdouts("family") == ["family0", "family1", "family2", "family4"]
    assert reduced.builtin_holdouts("swap") == []


def test_training_tasks_are_the_study_minus_the_group(reduced):
    tasks = reduced.training_tasks("reduced")
    assert len(tasks) == 16 and not set(tasks) & set(CUSTOM["reduced"])
    assert list(tasks) == [t for t in TASKS if t in tasks]  # canonical order
    assert reduced.training_tasks("multitask") == reduced.tasks
    everything = Study(["Go", "AntiGo"], {"both": ["Go", "AntiGo"]})
    with pytest.raises(StudyError, match="'both' holds out every task of the study"):
        everything.training_tasks("both")


# --- evaluation -----------------------------------------------------------------------------


def test_combined_references_are_trained_tasks():
    study = Study()
    # swap9 holds out Dur1, which the canonical triple of AntiMultiDur2 uses
    assert "Dur1" in compositional_references("AntiMultiDur2")
    refs = study.combined_references("AntiMultiDur2", "swap9")
    assert refs == ("MultiDur2", "Dur2", "AntiDur2")
    # when the canonical triple was trained, it is the one used
    assert study.combined_references("AntiGo", "swap9") == compositional_references("AntiGo")
    for name in HOLDOUTS:
        trained = set(study.training_tasks(name))
        for task in study.evaluation_tasks(name, "combined"):
            a, b, c = study.combined_references(task, name)
            assert {a, b, c} <= trained
            assert tuple(x - y + z for x, y, z in zip(STRUCTURE[a], STRUCTURE[b], STRUCTURE[c])) \
                == STRUCTURE[task]
    # a whole family held out leaves no triple of trained tasks: the test skips them
    assert study.evaluation_tasks("family0", "combined") == []
    assert study.evaluation_tasks("family0", "heldout") == list(HOLDOUTS["family0"])


def test_evaluation_tasks_of_a_reduced_study(reduced):
    assert reduced.evaluation_tasks("multitask", "validation") == list(reduced.tasks)
    assert reduced.evaluation_tasks("reduced", "validation") == list(reduced.training_tasks("reduced"))
    assert reduced.evaluation_tasks("reduced", "heldout") == CUSTOM["reduced"]
    combined = reduced.evaluation_tasks("reduced", "combined")
    assert combined == CUSTOM["reduced"]
    for task in combined:
        assert set(reduced.combined_references(task, "reduced")) <= set(
            reduced.training_tasks("reduced"))


# --- analyses and figures ---------------------------------------------------------------------


def test_dichotomies_keep_pairs_of_study_tasks(reduced):
    assert Study().dichotomies() == DICHOTOMIES
    d = reduced.dichotomies()
    assert list(d) == ["pro/anti", "standard/RT", "strongest/weakest", "mod1/mod2"]
    assert d["strongest/weakest"] == (("DM", "AntiDM"), ("DMMod1", "AntiDMMod1"),
                                      ("DMMod2", "AntiDMMod2"), ("MultiDM", "AntiMultiDM"))
    # one pair left: the dichotomy is dropped
    small = Study(["Go", "AntiGo", "GoMod1", "AntiGoMod1", "DMS", "DNMS"])
    assert small.dichotomies() == {"pro/anti": (("Go", "AntiGo"), ("GoMod1", "AntiGoMod1"))}
    assert Study(["Go", "AntiGo", "DMS"]).dichotomies() == {}


def test_ccgp_with_a_study_s_dichotomies_scores_only_its_tasks():
    import numpy as np

    rng = np.random.default_rng(0)
    study = Study(["Go", "AntiGo", "GoMod1", "AntiGoMod1", "GoMod2", "AntiGoMod2", "DMS"])
    reps = {t: rng.normal(size=(6, 3)) + (1 if t.startswith("Anti") else 0) for t in TASKS}
    scores = ccgp_scores(reps, study.dichotomies())
    assert set(scores["task"]) <= set(study.tasks)
    assert set(scores["dichotomy"]) == {"pro/anti", "mod1/mod2"}


def test_clause_groups_and_figures(reduced):
    conditional, imperative = Study().clause_groups()
    assert len(conditional) == 30 and len(imperative) == 20
    assert set(conditional) == CONDITIONAL_TASKS
    assert reduced.clause_groups()[0] == []
    applies = {name: reduced.figure_applies(name) for name in (
        "fig2f_clause", "fig3ad_pca", "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers",
        "fig4a_go_tuning", "fig4b_matching", "fig4c_dm_contrast", "fig4d_comp",
        "supp_task_variance", "fig2a_learning_curves")}
    assert applies == {"fig2f_clause": False, "fig3ad_pca": True, "fig3e_ccgp_zero_shot": True,
                       "fig3f_ccgp_layers": True, "fig4a_go_tuning": True,
                       "fig4b_matching": False, "fig4c_dm_contrast": True, "fig4d_comp": False,
                       "supp_task_variance": True, "fig2a_learning_curves": True}
    assert all(Study().figure_applies(name) for name in applies)
    with pytest.raises(StudyError, match="fig4b_matching needs tasks that are not in the study: "
                                         "DMS, DNMS, DMC, DNMC"):
        reduced.require_figure("fig4b_matching")
    with pytest.raises(StudyError, match="has no conditional task"):
        reduced.require_figure("fig2f_clause")
    with pytest.raises(StudyError, match="no imperative task"):
        Study(["family:Matching"]).require_figure("fig2f_clause")
    with pytest.raises(StudyError, match="fig3f_ccgp_layers needs a CCGP dichotomy"):
        Study(["Go", "DMS"]).require_figure("fig3f_ccgp_layers")
    reduced.require_figure("fig4a_go_tuning")  # applies: no error


def test_task_lists_of_production_and_examples(reduced):
    assert reduced.production_tasks("all") == list(reduced.tasks)
    assert reduced.production_tasks(["AntiGo", "DM"]) == ["AntiGo", "DM"]
    with pytest.raises(StudyError, match="production.tasks needs tasks that are not in the "
                                         "study: Dur1"):
        reduced.production_tasks(["AntiGo", "Dur1"])
    assert reduced.example_task(None, ["AntiGo", "AntiDMMod1"]) == "AntiDMMod1"
    assert reduced.example_task(None, ["AntiGo", "DM"]) == "AntiGo"
    with pytest.raises(StudyError, match="example_task 'DM' is not one of the production tasks"):
        reduced.example_task("DM", ["AntiGo"])
    assert reduced.task_examples() == ["Go", "DM"]
    assert Study().task_examples() == ["Go", "DM", "COMP1", "Dur1", "DMS"]
    with pytest.raises(StudyError, match="figures.task_examples needs .*: COMP1"):
        reduced.task_examples(["Go", "COMP1"])


def test_con_threshold_derivation_needs_its_tasks(reduced):
    assert reduced.con_tasks == [] and Study().con_tasks == ["ConDM", "ConAntiDM"]
    Study().check_con_derivation()
    with pytest.raises(StudyError, match="'derived'.*not in the study: ConAntiDM, DM, AntiDM"):
        Study(["ConDM", "Go"]).check_con_derivation()


# --- config checks ---------------------------------------------------------------------------


def config(**over):
    cfg = {
        "seed": 1,
        "tasks": GO_DM,
        "trials": {"pools": {"train": 10, "eval": 5}, "con_thresholds": "x.csv"},
        "holdouts": ["reduced", "multitask"],
        "custom_holdouts": CUSTOM,
        "instructions": "instructions.yaml",
        "language_models": [],
    }
    cfg.update(over)
    return cfg


def test_reduced_config_checks():
    check_config(config())
    check_config(config(trials={"pools": {"train": 10, "eval": 5}, "con_thresholds": "derived"}))
    for over, message in [
        ({"tasks": ["Go", "Gogo"]}, "tasks: unknown task 'Gogo'"),
        ({"holdouts": ["swap9"]}, "holdouts: holdout group 'swap9' holds out tasks that are "
                                  "not in the study: Dur1, ConDM, AntiMultiDur2"),
        ({"analysis": {"pca_holdout": "swap0"}}, "analysis.pca_holdout: holdout group 'swap0'"),
        ({"analysis": {"units": {"holdout": "family5"}}},
         "analysis.units.holdout: holdout group 'family5'"),
        ({"figures": {"task_examples": ["Go", "DMS"]}}, "figures.task_examples needs .*DMS"),
        ({"tasks": ["ConDM", "ConAntiDM", "Go"], "custom_holdouts": {},
          "holdouts": ["multitask"],
          "trials": {"pools": {"train": 10, "eval": 5}, "con_thresholds": "derived"}},
         "'derived'.*DM, AntiDM"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_config(config(**over))


def test_production_tasks_and_groups_must_lie_inside_the_study(repo):
    from instructnet.embeddings import language_models
    from instructnet.production.run import check_production_config

    base = yaml.safe_load((repo / "config" / "test_reduced.yaml").read_text())
    check_config(base)
    lms = language_models()
    check_production_config(base, lms)
    prod = base["production"]
    for key, value, message in [
        ("tasks", ["AntiGo", "DMS"], "production.tasks needs tasks that are not in the study: DMS"),
        ("holdouts", ["multitask", "swap9"], "production.holdouts: holdout group 'swap9'"),
        ("partners", {**prod["partners"], "holdouts": ["family8"]},
         "production.partners.holdouts: holdout group 'family8'"),
        ("example_task", "DM", "example_task 'DM' is not one of the production tasks"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_production_config({**base, "production": {**prod, key: value}}, lms)


def test_shipped_configs_pass_the_schema_and_checks(repo):
    for name in ("config", "paper", "test", "test_reduced"):
        cfg = yaml.safe_load((repo / "config" / f"{name}.yaml").read_text())
        check_config(cfg, repo)  # with the files it names
        assert cfg["training"]["lr_decay_batches"] == 2400
    # an analysis section without `trials` follows a small eval pool (no schema default
    # of 250 may fill it in and then fail the pool check)
    small = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    small["analysis"] = {"svm_c": 1.0}
    check_config(small)
    assert small["analysis"]["trials"] == small["analysis"]["units"]["trials"] == 8
    bad = yaml.safe_load((repo / "config" / "test_reduced.yaml").read_text())
    bad["tasks"] = "some"
    with pytest.raises(ConfigError, match="tasks: 'some' is not allowed; expected 'all' or a list"):
        check_config(bad)


def test_default_analysis_groups_outside_a_reduced_study_are_left_out():
    # unset, analysis.pca_holdout and units.holdout are swap9, which holds out tasks this
    # study lacks: no error, its panels are left out; set explicitly, it is an error
    cfg = check_config(config())
    assert cfg["analysis"]["pca_holdout"] == cfg["analysis"]["units"]["holdout"] == "swap9"
    with pytest.raises(ConfigError, match="analysis.pca_holdout: holdout group 'swap9'"):
        check_config(config(analysis={"pca_holdout": "swap9"}))


def test_config_label_names_each_file_once_relative_to_the_run(tmp_path):
    from instructnet.config import config_label

    repo, work = tmp_path / "repo", tmp_path / "repo" / "run"
    (repo / "config").mkdir(parents=True)
    work.mkdir()
    main = repo / "config" / "config.yaml"
    # the Snakefile's configfile and --configfile naming the same file: one name
    assert config_label([str(main), "../config/config.yaml"], work, repo) == "config/config.yaml"
    assert config_label([str(main), str(work / "my.yaml")], work, repo) == "config/config.yaml, my.yaml"
    assert config_label([str(work / "my.yaml"), str(main)], work, repo) == "config/config.yaml, my.yaml"
    assert config_label([str(main)], repo, repo) == "config/config.yaml"
    assert config_label(["/elsewhere/x.yaml"], work, repo) == "/elsewhere/x.yaml"
    assert config_label([], work, repo) == "config/config.yaml"
