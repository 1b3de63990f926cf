"""The study's plan (instructnet.plan): what the workflow runs, decided without Snakemake."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from instructnet.config import check_config
from instructnet.figures.panels import panels
from instructnet.plan import (
    JOB_MEM_MB,
    JOB_RUNTIME_MIN,
    PRODUCTION_PRIORITY,
    Plan,
)
from instructnet.tasks import held_out

REPO = Path(__file__).resolve().parents[1]


def plan_of(name="test.yaml", change=None):
    config = yaml.safe_load((REPO / "config" / name).read_text())
    if change:
        change(config)
    return Plan(check_config(config), str(REPO))


@pytest.fixture(scope="module")
def test_plan():
    return plan_of()


@pytest.fixture(scope="module")
def demo():
    return plan_of("config.yaml")


def test_training_tasks_are_the_study_minus_the_held_out_ones(test_plan, demo):
    assert set(test_plan.training_tasks("swap9")).isdisjoint(held_out("swap9"))
    assert len(test_plan.training_tasks("multitask")) == 50
    assert demo.training_tasks("godm_a") == [t for t in demo.study.tasks
                                             if t not in ("AntiGoMod2", "AntiDMMod1")]
    assert len(demo.training_tasks("godm_a")) == 18


def test_train_inputs_settings_and_the_model_grid(test_plan):
    inputs = test_plan.train_inputs("swap9", "sbertnet_minilm")
    assert inputs["embeddings"] == "results/embeddings/sbertnet_minilm.parquet"
    assert len(inputs["pools"]) == 50 - len(held_out("swap9"))
    assert "embeddings" not in test_plan.train_inputs("swap9", "simplenet")
    settings = test_plan.train_settings("simplenet")
    assert {"packing", "embedding_norm", "threshold_gpt"}.isdisjoint(settings)
    assert settings["threshold"] == 0.95
    gpt = plan_of(change=lambda c: c.update(language_models=["gptnet", "bownet"],
                                            models=["simplenet", "gptnet"]))
    assert gpt.train_settings("gptnet")["threshold"] == 0.85  # the GPT criterion
    assert test_plan.trained_models() == [
        f"results/models/{h}/{m}/seed0/model.pt"
        for h in ("swap9", "multitask") for m in ("simplenet", "sbertnet_minilm")]


def test_which_evaluation_test_applies(test_plan):
    assert test_plan.eval_applies("swap9", "sbertnet_minilm", "swapped")
    assert not test_plan.eval_applies("swap9", "simplenet", "swapped")  # no instructions
    assert not test_plan.eval_applies("swap9", "simplenet", "validation")
    assert test_plan.eval_applies("multitask", "sbertnet_minilm", "validation")
    assert not test_plan.eval_applies("multitask", "simplenet", "heldout")  # nothing held out
    files = test_plan.eval_files("heldout")
    assert files == [f"results/eval/swap9/{m}/seed0/heldout.parquet"
                     for m in ("simplenet", "sbertnet_minilm")]
    assert set(test_plan.evaluations()) >= set(files)
    assert test_plan.eval_tasks("swap9", "heldout") == list(held_out("swap9"))


def test_tables_and_figure2_follow_the_config(test_plan, demo):
    assert test_plan.collected("train_logs") == [
        f.replace("model.pt", "train_log.parquet") for f in test_plan.trained_models()]
    figures = {Path(f).stem for f in test_plan.figure2_targets() if f.endswith(".png")}
    assert {"fig2a_learning_curves", "fig2c_swapped", "supp_validation", "fig2f_clause"} <= figures
    assert "fig2d_family" not in figures and "fig2e_tuned" not in figures
    rules_only = plan_of(change=lambda c: (c.update(models=["simplenet"]),
                                           c["production"].update(enabled=False)))
    shown = {Path(f).stem for f in rules_only.figure2_targets()}
    assert "fig2c_swapped" not in shown and "supp_validation" not in shown
    # the demo's task set has no conditional task: no clause panel
    assert "results/figures/fig2f_clause.png" not in demo.figure2_targets()
    with pytest.raises(Exception, match="fig2f_clause"):
        demo.figure_inputs("fig2f_clause")


def test_analysis_targets_and_the_units_model(test_plan, demo):
    targets = demo.analysis_targets()
    assert "results/figures/fig3e_ccgp_zero_shot.png" in targets
    assert "results/figures/fig4a_go_tuning.png" in targets
    assert "results/figures/fig4b_matching.png" not in targets  # no matching task in the study
    assert demo.units_model == "sbertnet_minilm"  # the first instructed model
    assert demo.units_dir == "results/units/godm_a/sbertnet_minilm/seed0"
    off = plan_of(change=lambda c: c["analysis"].update(enabled=False))
    assert off.analysis_targets() == []
    assert {f"results/figures/{f}.png" for f in panels(4)} <= set(test_plan.analysis_targets())
    # the fidelity table takes the CCGP tables only where Figure 3e is made
    assert set(demo.fidelity_inputs()) == {"table", "ccgp", "zero_shot", "partners"}
    assert set(off.fidelity_inputs()) == {"table", "partners"}


def test_production_pairs_and_switch(test_plan):
    prod = test_plan.production
    assert prod.model == "sbertnet_minilm" and prod.tasks == ["AntiDMMod1", "DMMod1"]
    # a partner with tasks held out hears the all-task instructor and its own group's
    pairs = test_plan.partner_pairs()
    assert set(pairs) == {("multitask", "multitask"), ("multitask", "swap9"),
                          ("swap9", "multitask"), ("swap9", "swap9")}
    custom = plan_of(change=lambda c: (
        c["custom_holdouts"].update(other=["DMMod1"]),
        c["production"]["partners"].update(holdouts=["other", "swap9"])))
    assert ("swap9", "other") not in custom.partner_pairs()  # two different holdouts
    assert ("multitask", "other") in custom.partner_pairs()
    assert len(test_plan.partner_files()) == 4 * len(prod.partners["seeds"])
    assert {f"results/figures/{f}.png" for f in panels(5)} <= set(test_plan.production_targets())
    off = plan_of(change=lambda c: c["production"].update(enabled=False))
    assert off.production is None and off.production_targets() == []
    assert "partners" not in off.fidelity_inputs()
    # on fixed cores the instructing model (and its LM) go first; nothing else does
    high = PRODUCTION_PRIORITY
    assert high > 0
    assert [test_plan.train_priority(m) for m in ("sbertnet_minilm", "simplenet")] == [high, 0]
    assert [test_plan.embed_priority(lm) for lm in ("sbertnet_minilm", "bownet")] == [high, 0]
    assert test_plan.first_priority == high
    assert off.train_priority("sbertnet_minilm") == off.embed_priority("sbertnet_minilm") == 0
    assert off.first_priority == 0


def test_production_rules_share_the_instructing_models_priority():
    rules = (REPO / "workflow" / "rules" / "production.smk").read_text()
    assert rules.count("\nrule ") == rules.count("    priority: PRODUCTION_PRIORITY\n") == 6


def test_resources_grow_with_the_language_model_and_each_retry(test_plan):
    tuned = plan_of(change=lambda c: (
        c.update(language_models=["sbertnet_minilm", "gptnet_xl"], models=["gptnet_xl_tuned"]),
        c["production"].update(enabled=False)))
    assert tuned.model_class("gptnet_xl_tuned") == "tuned_large"
    assert tuned.job_mem_mb("gptnet_xl_tuned", 2) == 2 * JOB_MEM_MB["tuned_large"]
    assert tuned.runtime("train", "gptnet_xl_tuned", 1) == JOB_RUNTIME_MIN["train_tuned_large"]
    assert tuned.model_class("sbertnet_minilm_tuned") == "tuned"
    assert test_plan.job_mem_mb("simplenet", 3) == 3 * JOB_MEM_MB["base"]
    assert test_plan.runtime("evaluate", "simplenet", 1) == JOB_RUNTIME_MIN["evaluate"]
    assert test_plan.embed_mem_mb("bownet", 1) == JOB_MEM_MB["embed_bow"]


def test_each_compute_rule_gets_its_resources_from_the_plan(test_plan):
    from types import SimpleNamespace

    from instructnet.plan import CPU_STAGES

    w = SimpleNamespace(model="simplenet", lm="bownet")
    train = test_plan.resources("train")
    assert train["gpu"] == 1
    assert train["mem_mb"](w, 2) == 2 * JOB_MEM_MB["base"]
    assert train["runtime"](w, 1) == JOB_RUNTIME_MIN["train"]
    assert test_plan.resources("evaluate")["runtime"](w, 3) == 3 * JOB_RUNTIME_MIN["evaluate"]
    embed = test_plan.resources("embed")
    assert embed["gpu"](w) == 0 and embed["mem_mb"](w, 1) == JOB_MEM_MB["embed_bow"]
    assert embed["gpu"](SimpleNamespace(lm="sbertnet_minilm")) == 1
    packed = test_plan.resources("train_packed")
    assert (packed["gpu"], packed["runtime"](w, 2)) == (1, 2 * JOB_RUNTIME_MIN["train"])
    for stage in ("con_thresholds", "decoder", "motor_feedback", "partner_eval", *CPU_STAGES):
        res = test_plan.resources(stage)
        assert ("gpu" in res) == (stage not in CPU_STAGES), stage
        assert res["mem_mb"](w, 2) == 2 * JOB_MEM_MB["base"]
        assert res["runtime"](w, 1) == JOB_RUNTIME_MIN[stage]
    with pytest.raises(KeyError):
        test_plan.resources("no_such_stage")
    # every rule with resources asks the plan, one line
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    stages = re.findall(r"resources:\n +\*\*PLAN\.resources\(\"(\w+)\"\),\n +\w", rules)
    assert len(stages) == rules.count("resources:") == 10
    assert rules.count("threads:") == 2  # train_packed, con_thresholds; the rest 1


def test_packing_and_con_thresholds(test_plan):
    class W:
        holdout = "swap9"
        model = "simplenet"

    params = test_plan.packed_params(lambda w: [w.model])
    assert params["members"](W) == [("simplenet", 0)]
    assert params["checkpoints"](W) == ["results/models/swap9/simplenet/seed0/checkpoint.pt"]
    assert test_plan.pack_constraints() == {"holdout": "swap9|multitask",
                                            "model": "simplenet|sbertnet_minilm"}
    assert test_plan.con_thresholds("DM") == []
    assert test_plan.con_thresholds("ConDM").endswith("con_thresholds_default.csv")
    derived = plan_of("paper.yaml")
    assert derived.con_thresholds("ConAntiDM") == "results/tasks/con_thresholds.parquet"


def test_packed_job_by_seeds_or_by_models():
    def packing(by):
        return plan_of(change=lambda c: c["training"].update(
            seeds=[0, 1], packing={"by": by, "max_networks": 4})).packed_job

    class W:
        holdout = "swap9"
        model = "sbertnet_minilm"

    assert packing("none") is None
    seeds, models = packing("seeds"), packing("models")
    assert seeds.models(W) == ["sbertnet_minilm"]
    assert seeds.outputs("model.pt") == ["results/models/{holdout}/{model}/seed0/model.pt",
                                         "results/models/{holdout}/{model}/seed1/model.pt"]
    assert seeds.name == "{holdout}/{model}"
    assert set(seeds.constraints) == {"holdout", "model"}
    assert models.models(W) == ["simplenet", "sbertnet_minilm"]
    assert models.outputs("train_log.parquet") == [
        f"results/models/{{holdout}}/{m}/seed{s}/train_log.parquet"
        for m in ("simplenet", "sbertnet_minilm") for s in (0, 1)]
    assert models.name == "{holdout}" and set(models.constraints) == {"holdout"}


def test_rule_all_is_every_target_once(test_plan):
    targets = test_plan.all_targets()
    assert len(targets) == len(set(targets))
    assert "results/tables/fidelity.md" in targets
    assert set(test_plan.trial_pools()) <= set(targets)
    assert copy.deepcopy(test_plan.stimulus) == {"convention": "paper", "tuning": 8.0}


def test_every_rule_wildcard_is_constrained_by_the_plan(test_plan):
    from instructnet.figures.panels import PANELS
    from instructnet.plan import TABLES, TESTS

    constraints = test_plan.wildcard_constraints()
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    used = set(re.findall(r"\{(\w+)\}", "".join(re.findall(r'(?<!f)"(results/[^"]*)"', rules))))
    assert used <= set(constraints), used - set(constraints)
    # one place, common.smk; only the packed job narrows its own wildcards further
    assert rules.count("wildcard_constraints:") == rules.count("**PACKED.constraints") + 1 == 2

    def matches(key, value):
        return re.fullmatch(constraints[key], value) is not None

    assert all(matches("test", t) for t in TESTS) and not matches("test", "heldoutx")
    assert all(matches("figure", f) for f in PANELS) and not matches("figure", "task_examples")
    assert all(matches("name", t) for t in TABLES) and not matches("name", "zero_shot")
    assert matches("pseed", "12") and not matches("pholdout", "no_such_group")
    assert test_plan.other_test_tables() == [
        "results/tables/swapped.parquet", "results/tables/combined.parquet",
        "results/tables/input_only.parquet", "results/tables/validation.parquet"]
    only = plan_of(change=lambda c: c["evaluation"].update(tests=["heldout", "combined"]))
    assert only.other_test_tables() == ["results/tables/combined.parquet"]


def test_figure_inputs_and_settings_come_from_the_panel_registry(test_plan):
    plan = test_plan
    assert plan.figure_inputs("fig2c_swapped") == [
        "results/tables/zero_shot.parquet", "results/tables/swapped.parquet"]
    assert plan.figure_inputs("fig4a_go_tuning") == [
        f"{plan.units_dir}/unit_curves.parquet", f"{plan.units_dir}/unit_stats.parquet"]
    assert plan.figure_settings("fig2a_learning_curves") == {}
    assert plan.figure_settings("fig3ad_pca") == {"held": list(plan.held[plan.pca_holdout])}
    assert plan.figure_settings("fig4b_matching") == {
        "model": plan.units_model, "held": list(plan.held[plan.units["holdout"]])}
    assert plan.figure_settings("fig5e_confusion") == {"tasks": list(plan.study.tasks)}
    assert plan.figure_settings("fig5d_examples") == {"task": plan.production.example_task}
    off = plan_of(change=lambda c: c["production"].update(enabled=False))
    assert off.figure_settings("fig5d_examples") == {"task": None}
    assert plan.figure_category("supp_task_variance") == "Figure 4"
