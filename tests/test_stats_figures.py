"""Statistics (METHODS §7), the headline-number table (§8) and Figure 2 on synthetic tables."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from instructnet.analysis import paper, stats
from instructnet.figures import fig2
from instructnet.tasks.constants import CONDITIONAL_TASKS, IMPERATIVE_TASKS, TASKS

MODELS = ("simplenet", "sbertnet_l", "structurenet")
SEEDS = (0, 1, 2)
FEW_TASKS = ("Go", "AntiDM", "COMP1", "Dur2", "DMS")
BASE = {"simplenet": 0.4, "sbertnet_l": 0.8, "structurenet": 0.9}


def _acc(model, seed, task, repeat, batch):
    """Deterministic accuracy with known structure: model level + seed/task offsets,
    repeats differ by ±0.02, learning adds 0.001 per batch."""
    base = BASE.get(model.removesuffix("_tuned"), 0.6) + (0.05 if model.endswith("_tuned") else 0)
    return base + 0.01 * seed + 0.003 * TASKS.index(task) + (0.02 if repeat else -0.02) + 0.001 * batch


@pytest.fixture(scope="module")
def heldout():
    rows = [
        {"holdout": f"swap{TASKS.index(t) % 10}", "model": m, "seed": s, "task": t,
         "repeat": r, "batch": b, "accuracy": _acc(m, s, t, r, b)}
        for m, s, t, r, b in itertools.product(MODELS, SEEDS, FEW_TASKS, (0, 1), range(12))
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def zero_shot(heldout):
    return stats.zero_shot_table(heldout)


def _full_zero_shot(models=("sbertnet_l", "sbertnet_l_tuned"), seeds=SEEDS, rng_seed=1):
    rng = np.random.default_rng(rng_seed)
    rows = [{"holdout": f"swap{i % 10}", "model": m, "seed": s, "task": t,
             "accuracy": float(rng.uniform(0.3, 1.0)) - (0.2 if t in CONDITIONAL_TASKS else 0)}
            for m in models for s in seeds for i, t in enumerate(TASKS)]
    return pd.DataFrame(rows)


# --- statistics -----------------------------------------------------------------------
def test_display_names_and_order():
    assert stats.display_name("sbertnet_l") == "SBERTNET (L)"
    assert stats.display_name("gptnet_xl") == "GPTNET (XL)"
    assert stats.display_name("clipnet_s") == "CLIPNET (S)"
    assert stats.display_name("sbertnet_minilm") == "SBERTNET (MiniLM)"
    assert stats.display_name("sbertnet_l_tuned") == "SBERTNET (L) (tuned)"
    assert stats.display_name("bertnet_mlp") == "BERTNET (MLP)"
    assert stats.display_name("weirdnet") == "WEIRDNET"
    assert stats.MODEL_ORDER[0] == "simplenet"
    assert stats.order_models(["structurenet", "zzz", "sbertnet_l_tuned", "simplenet",
                               "sbertnet_l"]) == [
        "simplenet", "sbertnet_l", "sbertnet_l_tuned", "structurenet", "zzz"]


def test_zero_shot_is_batch0_mean_over_repeats(heldout, zero_shot):
    assert list(zero_shot.columns) == ["holdout", "model", "seed", "task", "accuracy"]
    assert len(zero_shot) == len(MODELS) * len(SEEDS) * len(FEW_TASKS)
    row = zero_shot[(zero_shot.model == "sbertnet_l") & (zero_shot.seed == 2)
                    & (zero_shot.task == "COMP1")]
    # repeats at ±0.02 around the level cancel; batch 0 carries no learning term
    expected = 0.8 + 0.02 + 0.003 * TASKS.index("COMP1")
    assert row["accuracy"].item() == pytest.approx(expected)


def test_summary_matches_numpy_scipy(zero_shot):
    s = stats.summary(zero_shot)
    assert list(s.columns) == ["model", "display", "n_seeds", "mean", "sd", "ci_low", "ci_high"]
    assert list(s["model"]) == ["simplenet", "sbertnet_l", "structurenet"]
    for m in MODELS:
        x = np.array([np.mean([0.0 + BASE[m] + 0.01 * sd + 0.003 * TASKS.index(t)
                               for t in FEW_TASKS]) for sd in SEEDS])
        row = s[s.model == m].iloc[0]
        assert row["n_seeds"] == 3
        assert row["mean"] == pytest.approx(x.mean())
        assert row["sd"] == pytest.approx(x.std(ddof=1))
        half = sps.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
        assert row["ci_low"] == pytest.approx(x.mean() - half)
        assert row["ci_high"] == pytest.approx(x.mean() + half)
        assert row["display"] == stats.display_name(m)


def test_summary_single_seed_gives_nan(zero_shot):
    s = stats.summary(zero_shot[zero_shot.seed == 0])
    assert (s["n_seeds"] == 1).all()
    assert s["sd"].isna().all() and s["ci_low"].isna().all() and s["ci_high"].isna().all()
    assert s["mean"].notna().all()


def test_welch_matches_scipy():
    rng = np.random.default_rng(3)
    vals = {"simplenet": rng.normal(0.4, 0.05, 5), "sbertnet": rng.normal(0.8, 0.02, 4)}
    table = pd.DataFrame([{"model": m, "seed": i, "task": t, "accuracy": v}
                          for m, xs in vals.items() for i, v in enumerate(xs)
                          for t in ("Go", "DM")])
    w = stats.welch_matrix(table)
    assert len(w) == 2 and set(w.columns) == {"model_a", "model_b", "t", "p", "n_a", "n_b"}
    ref = sps.ttest_ind(vals["simplenet"], vals["sbertnet"], equal_var=False)
    row = w[(w.model_a == "simplenet") & (w.model_b == "sbertnet")].iloc[0]
    assert row["t"] == pytest.approx(ref.statistic)
    assert row["p"] == pytest.approx(ref.pvalue)
    assert (row["n_a"], row["n_b"]) == (5, 4)
    back = w[(w.model_a == "sbertnet") & (w.model_b == "simplenet")].iloc[0]
    assert back["t"] == pytest.approx(-ref.statistic) and back["p"] == pytest.approx(ref.pvalue)
    # one seed on a side -> NaN, no crash
    w1 = stats.welch_matrix(table[(table.model == "sbertnet") | (table.seed == 0)])
    assert w1["t"].isna().all() and w1["p"].isna().all()


def test_clause_null_has_50_splits_of_30_20():
    zs = _full_zero_shot()
    observed, null, tests = stats.clause_analysis(zs, n_null=50, seed=0)
    assert len(CONDITIONAL_TASKS) == 30 and len(IMPERATIVE_TASKS) == 20
    assert len(observed) == 2 * len(SEEDS)
    assert (observed["n_conditional"] == 30).all() and (observed["n_imperative"] == 20).all()
    counts = null.groupby(["model", "seed"])["split"].nunique()
    assert len(counts) == 2 * len(SEEDS) and (counts == 50).all()
    # observed difference recomputed by hand
    one = zs[(zs.model == "sbertnet_l") & (zs.seed == 1)].set_index("task")["accuracy"]
    expected = one[list(CONDITIONAL_TASKS)].mean() - one[list(IMPERATIVE_TASKS)].mean()
    got = observed[(observed.model == "sbertnet_l") & (observed.seed == 1)]["difference"].item()
    assert got == pytest.approx(expected)
    # with 30/20 splits the null's weighted mean equals the overall mean identity:
    # 30*c + 20*i is constant for every split of the same 50 numbers
    total = one.sum()
    nl = null[(null.model == "sbertnet_l") & (null.seed == 1)]["difference"].to_numpy()
    c = (total + 20 * nl) / 50  # c - i = d, 30 c + 20 i = total
    assert np.all((c >= one.min() - 1e-9) & (c <= one.max() + 1e-9))
    assert nl.std() > 0
    # tests: Welch between observed (3 seeds) and null (150) per model
    ref = sps.ttest_ind(observed[observed.model == "sbertnet_l"]["difference"],
                        null[null.model == "sbertnet_l"]["difference"], equal_var=False)
    row = tests[tests.model == "sbertnet_l"].iloc[0]
    assert row["t"] == pytest.approx(ref.statistic) and row["p"] == pytest.approx(ref.pvalue)
    assert (row["n_observed"], row["n_null"]) == (3, 150)
    assert row["t"] < 0  # conditional tasks were made 0.2 harder
    # seeded: same seed, same null
    _, null2, _ = stats.clause_analysis(zs, n_null=50, seed=0)
    pd.testing.assert_frame_equal(null, null2)


def test_clause_partial_task_set(zero_shot):
    observed, null, tests = stats.clause_analysis(zero_shot, n_null=7, seed=1)
    # FEW_TASKS: Go, AntiDM imperative; COMP1, Dur2, DMS conditional
    assert (observed["n_conditional"] == 3).all() and (observed["n_imperative"] == 2).all()
    assert (null.groupby(["model", "seed"]).size() == 7).all()


def test_learning_curves(heldout):
    lc = stats.learning_curves(heldout)
    assert {"model", "batch", "mean", "sd"} <= set(lc.columns)
    assert len(lc) == len(MODELS) * 12
    row = lc[(lc.model == "simplenet") & (lc.batch == 5)].iloc[0]
    per_seed_means = [np.mean([_acc("simplenet", s, t, 0, 5) + 0.02 for t in FEW_TASKS])
                      for s in SEEDS]
    assert row["mean"] == pytest.approx(np.mean(per_seed_means))
    assert row["sd"] == pytest.approx(np.std(per_seed_means, ddof=1))


# --- paper numbers --------------------------------------------------------------------
def test_paper_table_rows():
    t = paper.paper_table()
    swap = t[t.measure == paper.MEASURE_SWAP].set_index("model")["paper"]
    assert swap["sbertnet_l"] == pytest.approx(0.83) and swap["structurenet"] == pytest.approx(0.88)
    assert len(swap) == 9
    assert len(t) == 9 + 2 + 3 + 1 + 1 + 4


def test_fidelity_table_aligns(zero_shot):
    ours = {paper.MEASURE_SWAP: stats.summary(zero_shot),
            "our extra measure": pd.DataFrame({"model": ["bownet"], "mean": [0.5], "sd": [np.nan],
                                               "n_seeds": [1]})}
    ft = paper.fidelity_table(ours, "demo")
    assert list(ft.columns) == ["measure", "model", "display", "paper", "ours", "sd", "ci_low",
                                "ci_high", "n_seeds"]
    assert ft.attrs["config"] == "demo"
    s = stats.summary(zero_shot).set_index("model")
    row = ft[(ft.measure == paper.MEASURE_SWAP) & (ft.model == "sbertnet_l")].iloc[0]
    assert row["paper"] == pytest.approx(0.83)
    assert row["ours"] == pytest.approx(s.loc["sbertnet_l", "mean"])
    assert row["sd"] == pytest.approx(s.loc["sbertnet_l", "sd"])
    assert row["ci_low"] == pytest.approx(s.loc["sbertnet_l", "ci_low"])
    assert row["n_seeds"] == 3
    # paper-only model: ours NaN; ours-only measure: paper NaN
    gpt = ft[(ft.measure == paper.MEASURE_SWAP) & (ft.model == "gptnet")].iloc[0]
    assert np.isnan(gpt["ours"]) and gpt["paper"] == pytest.approx(0.57)
    extra = ft[ft.measure == "our extra measure"].iloc[0]
    assert np.isnan(extra["paper"]) and extra["ours"] == 0.5
    # every paper row is present exactly once
    assert len(ft.drop_duplicates(["measure", "model"])) == len(ft)
    assert len(ft[ft.paper.notna()]) == len(paper.paper_table())

    md = paper.fidelity_markdown(ft, "demo")
    first = md.splitlines()[:3]
    assert any("demo" in line for line in first)
    assert "| zero-shot, swap holdouts | SBERTNET (L) | 83 % |" in md
    r = s.loc["sbertnet_l"]
    cell = (f"{100 * r['mean']:.0f} % ±{100 * r['sd']:.0f} "
            f"[{100 * r['ci_low']:.0f}, {100 * r['ci_high']:.0f}]")
    assert f"| 83 % | {cell} | 3 |" in md
    assert "—" in md  # missing values
    assert "." not in md.split("| SBERTNET (L) | 83 % |")[1].split("|")[1]  # no decimals


def test_fidelity_table_puts_both_scorings_beside_the_paper(zero_shot):
    strict = {paper.MEASURE_SWAP: stats.summary(zero_shot)}
    lenient = zero_shot.assign(accuracy=(zero_shot["accuracy"] + 0.2).clip(upper=1))
    ours = {"strict": strict, "paper": {paper.MEASURE_SWAP: stats.summary(lenient)}}
    ft = paper.fidelity_table(ours, "demo")
    assert {"ours_strict", "sd_strict", "ci_low_paper", "n_seeds_paper"} <= set(ft.columns)
    row = ft[(ft.measure == paper.MEASURE_SWAP) & (ft.model == "sbertnet_l")].iloc[0]
    assert row["ours_paper"] > row["ours_strict"]
    md = paper.fidelity_markdown(ft, "demo")
    assert "| ours, strict scoring | ours, paper scoring |" in md
    assert "`paper` scoring:" in md and "`strict` scoring:" in md
    # the difference to the paper is taken on the comparable (paper-scored) column
    diff = f"{100 * (row['ours_paper'] - 0.83):+.0f} |"
    assert md.split("| zero-shot, swap holdouts | SBERTNET (L) |")[1].splitlines()[0].endswith(diff)
    # the stimulus convention of every column of ours is named above the table
    assert "convention" not in md
    from instructnet.tasks import Stimulus

    for stimulus, words in ((Stimulus(), "k = 8, continuous directions, noise σ per trial"),
                            (Stimulus("reference"), "k = 12, directions snapped down")):
        named = paper.fidelity_markdown(ft, "demo", stimulus=stimulus.settings())
        head = named.split("| measure |")[0]
        assert f"Stimulus convention `{stimulus.convention}`" in head and words in head


# --- figures --------------------------------------------------------------------------
def _check(path, tmp_path):
    assert path.suffix == ".png" and path.exists() and path.stat().st_size > 1000
    pdf = path.with_suffix(".pdf")
    assert pdf.exists() and pdf.stat().st_size > 500
    assert path.parent == tmp_path


@pytest.fixture(scope="module")
def tables(heldout, zero_shot):
    swapped = zero_shot.assign(accuracy=lambda d: d["accuracy"] * 0.3, instructions_of="DM",
                               repeat=0)
    tuned_zs = _full_zero_shot(models=("sbertnet_l", "sbertnet_l_tuned", "simplenet"))
    observed, null, _ = stats.clause_analysis(tuned_zs)
    logs = pd.DataFrame([
        {"holdout": "swap0", "model": m, "seed": s, "epoch": e, "task": t,
         "loss": 0.1 / (e + 1), "accuracy": min(1.0, 0.5 + 0.1 * e), "lr": 1e-3,
         "seconds": 1.0, "trials_per_s": 100.0}
        for m, s, e, t in itertools.product(MODELS, SEEDS, range(4), FEW_TASKS)])
    validation = zero_shot.assign(repeat=0)
    return dict(heldout=heldout, zero_shot=zero_shot, swapped=swapped, tuned_zs=tuned_zs,
                observed=observed, null=null, logs=logs, validation=validation)


def _draw_all(t, tmp_path):
    yield fig2.fig2a_learning_curves(t["heldout"], tmp_path / "fig2a.png")
    yield fig2.fig2b_distribution(t["zero_shot"], tmp_path / "fig2b.png")
    yield fig2.fig2c_swapped(t["zero_shot"], t["swapped"], tmp_path / "fig2c.png")
    yield fig2.fig2d_family(t["zero_shot"], tmp_path / "fig2d.png")
    yield fig2.fig2e_tuned(t["tuned_zs"], tmp_path / "fig2e.png")
    yield fig2.fig2f_clause(t["observed"], t["null"], tmp_path / "fig2f.png")
    yield fig2.supp_training_curves(t["logs"], tmp_path / "supp_train.png")
    yield fig2.supp_validation(t["validation"], tmp_path / "supp_val.png")
    yield fig2.supp_welch_heatmaps({"swap": stats.welch_matrix(t["zero_shot"]),
                                    "tuned": stats.welch_matrix(t["tuned_zs"])},
                                   tmp_path / "supp_welch.png")


def test_figures_full(tables, tmp_path):
    for path in _draw_all(tables, tmp_path):
        _check(path, tmp_path)


def test_figures_demo_scale(tables, tmp_path):
    """One model, one seed, no tuned models: nothing crashes, every file is written."""
    one = {k: (v[(v["model"] == "sbertnet_l") & (v["seed"] == 0)] if k != "null" else v.iloc[:0])
           for k, v in tables.items()}
    one["tuned_zs"] = one["zero_shot"]  # no tuned model in this run
    one["observed"], one["null"], _ = stats.clause_analysis(one["zero_shot"])
    for path in _draw_all(one, tmp_path):
        _check(path, tmp_path)
    # empty inputs give a message panel, not an error
    _check(fig2.fig2e_tuned(one["zero_shot"].iloc[:0], tmp_path / "e_empty.png"), tmp_path)
    _check(fig2.supp_welch_heatmaps({}, tmp_path / "w_empty"), tmp_path)
    _check(fig2.fig2c_swapped(one["zero_shot"], None, tmp_path / "c_noswap.png"), tmp_path)


def test_one_welch_test_serves_every_table():
    a, b = np.array([0.9, 0.8, 0.85, np.nan]), np.array([0.5, 0.6, 0.4])
    t, p = stats.welch(a, b)
    ref = sps.ttest_ind(a[:3], b, equal_var=False)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue)) and t > 0
    assert all(np.isnan(stats.welch([0.9, np.nan], b)))  # one value left: no test


def _drawn(monkeypatch, draw):
    """The matplotlib figure a figure function saves (captured before it is closed)."""
    figures = []
    real = fig2.save_figure

    def keep(fig, out):
        figures.append(fig)
        return real(fig, out)

    monkeypatch.setattr(fig2, "save_figure", keep)
    draw()
    assert len(figures) == 1
    return figures[0]


def test_figure2a_draws_each_models_curve_from_the_table(heldout, tmp_path, monkeypatch):
    """The lines of Figure 2a are the learning-curve table's means, one per model, in the
    plotting order, labelled with the seed count; the shaded band is ±1 SD."""
    fig = _drawn(monkeypatch, lambda: fig2.fig2a_learning_curves(heldout, tmp_path / "a.png"))
    curves = stats.learning_curves(heldout)
    lines = fig.axes[0].get_lines()
    models = stats.order_models(curves["model"])
    assert [line.get_label() for line in lines] == [
        f"{stats.display_name(m)} (n={len(SEEDS)})" for m in models]
    for line, m in zip(lines, models):
        c = curves[curves["model"] == m]
        np.testing.assert_allclose(line.get_xdata(), c["batch"])
        np.testing.assert_allclose(line.get_ydata(), c["mean"])
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    first = curves[curves["model"] == models[0]]
    assert band.max() == pytest.approx((first["mean"] + first["sd"]).max())


def test_figure2b_draws_one_point_per_model_and_task(zero_shot, tmp_path, monkeypatch):
    fig = _drawn(monkeypatch, lambda: fig2.fig2b_distribution(zero_shot, tmp_path / "b.png"))
    points = np.concatenate([c.get_offsets()[:, 0] for c in fig.axes[0].collections
                             if len(c.get_offsets())])
    tasks = zero_shot.groupby(["model", "task"])["accuracy"].mean()
    np.testing.assert_allclose(np.sort(points), np.sort(tasks.to_numpy()))


# --- the panel registry (rule figure) -------------------------------------------------
def test_every_panel_has_a_drawing_function_taking_its_tables_and_settings():
    import importlib
    import inspect

    from instructnet.figures.panels import PANELS, panels

    assert sorted(n for f in (2, 3, 4, 5) for n in panels(f)) == sorted(PANELS)
    for name, panel in PANELS.items():
        draw = getattr(importlib.import_module(f"instructnet.figures.fig{panel.figure}"), name)
        inspect.signature(draw).bind(*panel.tables, "out.png", **dict.fromkeys(panel.settings))


def test_draw_panel_draws_the_strict_rows_of_its_tables(heldout, tmp_path, monkeypatch):
    """draw_panel reads the panel's tables, keeps the strict scoring, applies the panel's
    transform (zero-shot of learning curves, Welch matrices per condition) and passes them
    with the settings to the drawing function of the panel's name."""
    from instructnet.figures.panels import draw_panel

    both = pd.concat([heldout.assign(scoring="strict"),
                      heldout.assign(scoring="paper", accuracy=1.0)])
    path = tmp_path / "heldout_family.parquet"
    both.to_parquet(path)
    got = {}
    monkeypatch.setattr(fig2, "fig2d_family", lambda t, out: got.update(table=t, out=out))
    draw_panel("fig2d_family", [path], tmp_path / "d.png")
    pd.testing.assert_frame_equal(got["table"], stats.zero_shot_table(heldout))
    assert got["out"] == tmp_path / "d.png"

    welch = pd.DataFrame({"condition": ["swap", "swap", "tuned"], "a": [1.0, 2.0, 3.0]})
    welch.to_parquet(tmp_path / "welch.parquet")
    monkeypatch.setattr(fig2, "supp_welch_heatmaps", lambda m, out: got.update(matrices=m))
    draw_panel("supp_welch_heatmaps", [tmp_path / "welch.parquet"], tmp_path / "w.png")
    assert list(got["matrices"]) == ["swap", "tuned"]
    assert got["matrices"]["tuned"].to_dict("list") == {"a": [3.0]}

    with pytest.raises(ValueError, match="fig2c_swapped draws from 2 tables"):
        draw_panel("fig2c_swapped", [path], tmp_path / "c.png")


def test_draw_panel_writes_the_png_and_pdf(zero_shot, tmp_path):
    from instructnet.figures.panels import draw_panel

    zero_shot.to_parquet(tmp_path / "zero_shot.parquet")
    _check(draw_panel("fig2b_distribution", [tmp_path / "zero_shot.parquet"],
                      tmp_path / "fig2b_distribution.png"), tmp_path)
