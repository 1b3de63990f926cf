"""CCGP (METHODS §7): the dichotomy tables, scores on planted and random geometry,
representations of a tiny model, the layer hierarchy and the aggregate tables."""

import numpy as np
import pandas as pd
import pytest
import torch

from instructnet.analysis.ccgp import (
    DICHOTOMIES,
    DICHOTOMY_AXIS,
    FitCache,
    ccgp_scores,
    ccgp_summary,
    ccgp_vs_zero_shot,
    check_dichotomies,
    layer_ccgp,
    model_ccgp,
    neighbour_welch,
    stack_ccgp,
)
from instructnet.analysis.representations import (
    PCA_TASKS,
    language_layers,
    layer_arrays,
    model_representations,
    pca_table,
    read_representations,
    stimulus_onset,
    write_representations,
)
from instructnet.tasks import TASKS, TrialBatch, generate_trials
from instructnet.tasks.constants import STRUCTURE

# METHODS §7, verbatim: "name (A–B, C–D, ...)"
SPEC = """
pro/anti: Go–AntiGo, GoMod1–AntiGoMod1, GoMod2–AntiGoMod2, RTGo–AntiRTGo, RTGoMod1–AntiRTGoMod1, RTGoMod2–AntiRTGoMod2
standard/RT: Go–RTGo, GoMod1–RTGoMod1, GoMod2–RTGoMod2, AntiGo–AntiRTGo, AntiGoMod1–AntiRTGoMod1, AntiGoMod2–AntiRTGoMod2
strongest/weakest: DM–AntiDM, DMMod1–AntiDMMod1, DMMod2–AntiDMMod2, MultiDM–AntiMultiDM, ConDM–ConAntiDM, COMP1–AntiCOMP1, COMP2–AntiCOMP2, MultiCOMP1–AntiMultiCOMP1, MultiCOMP2–AntiMultiCOMP2
longest/shortest: Dur1–AntiDur1, Dur2–AntiDur2, MultiDur1–AntiMultiDur1, MultiDur2–AntiMultiDur2
first/second: Dur1–Dur2, AntiDur1–AntiDur2, MultiDur1–MultiDur2, AntiMultiDur1–AntiMultiDur2, Dur1Mod1–Dur2Mod1, Dur1Mod2–Dur2Mod2, COMP1–COMP2, MultiCOMP1–MultiCOMP2, AntiCOMP1–AntiCOMP2, AntiMultiCOMP1–AntiMultiCOMP2, COMP1Mod1–COMP2Mod1, COMP1Mod2–COMP2Mod2
match/non-match: DMS–DNMS, DMC–DNMC
stimulus/category: DNMS–DNMC, DMS–DMC
mod1/mod2: GoMod1–GoMod2, AntiGoMod1–AntiGoMod2, RTGoMod1–RTGoMod2, AntiRTGoMod1–AntiRTGoMod2, DMMod1–DMMod2, AntiDMMod1–AntiDMMod2, COMP1Mod1–COMP1Mod2, COMP2Mod1–COMP2Mod2, Dur1Mod1–Dur1Mod2, Dur2Mod1–Dur2Mod2
"""


def test_dichotomies_match_the_spec_exactly():
    spec = {}
    for line in SPEC.strip().splitlines():
        name, pairs = line.split(": ")
        spec[name] = tuple(tuple(p.split("–")) for p in pairs.split(", "))
    assert DICHOTOMIES == spec
    assert list(DICHOTOMIES) == list(spec)  # the spec's order
    check_dichotomies()  # every pair is (+1, −1) on its structure axis
    for name, pairs in DICHOTOMIES.items():
        for a, b in pairs:
            assert STRUCTURE[a][DICHOTOMY_AXIS[name]] == 1 and STRUCTURE[b][DICHOTOMY_AXIS[name]] == -1


def test_check_dichotomies_rejects_a_misaligned_pair():
    bad = {"pro/anti": (("AntiGo", "Go"), ("RTGo", "AntiRTGo"))}
    with pytest.raises(ValueError, match="AntiGo"):
        check_dichotomies(bad)


def _planted(rng, noise=0.5, n=40, d=32):
    axes = rng.normal(size=(10, d))
    return {t: np.asarray(STRUCTURE[t], float) @ axes + noise * rng.normal(size=(n, d)) for t in TASKS}


def test_planted_abstract_axes_score_one():
    scores = ccgp_scores(_planted(np.random.default_rng(0)))
    assert set(scores["dichotomy"]) == set(DICHOTOMIES)
    assert scores["score"].min() > 0.95
    # every task of a dichotomy gets a row; combinations: (k-1) as train + (k-1) as test
    # for its own pair, plus every other ordered combination with its pair in it
    pa = scores[scores["dichotomy"] == "pro/anti"]
    assert len(pa) == 12 and set(pa["n_combinations"]) == {2 * 5}


def test_random_representations_score_chance():
    rng = np.random.default_rng(1)
    # every task its own random centre: separable pairwise, but no shared axis
    reps = {t: 3 * rng.normal(size=32) + rng.normal(size=(40, 32)) for t in TASKS}
    assert abs(ccgp_scores(reps)["score"].mean() - 0.5) < 0.08
    # no structure at all
    reps = {t: rng.normal(size=(40, 32)) for t in TASKS}
    assert abs(ccgp_scores(reps)["score"].mean() - 0.5) < 0.05


def test_one_abstract_axis_only_scores_its_dichotomy():
    rng = np.random.default_rng(2)
    axis = rng.normal(size=32)
    # pro/anti coded along one shared axis; everything else random per task
    reps = {t: STRUCTURE[t][0] * 3 * axis + 3 * rng.normal(size=32) + rng.normal(size=(40, 32))
            for t in TASKS}
    by = ccgp_scores(reps).groupby("dichotomy")["score"].mean()
    assert by["pro/anti"] > 0.9
    assert by["mod1/mod2"] < 0.75


def test_task_score_is_the_mean_over_its_combinations():
    # three pairs; hand-made 1-d data where the classifiers are obvious
    dich = {"pro/anti": (("Go", "AntiGo"), ("GoMod1", "AntiGoMod1"), ("GoMod2", "AntiGoMod2"))}
    reps = {"Go": np.array([[1.0]]), "AntiGo": np.array([[-1.0]]),
            "GoMod1": np.array([[1.0]]), "AntiGoMod1": np.array([[-1.0]]),
            # this pair is flipped: classifiers of the others fail on it and vice versa
            "GoMod2": np.array([[-1.0]]), "AntiGoMod2": np.array([[1.0]])}
    s = ccgp_scores(reps, dich).set_index("task")["score"]
    # Go's combinations: (0,1)=1, (1,0)=1, (0,2)=0, (2,0)=0 -> 0.5
    assert s["Go"] == pytest.approx(0.5)
    # GoMod2: (2,0)=0, (2,1)=0, (0,2)=0, (1,2)=0 -> 0
    assert s["GoMod2"] == pytest.approx(0.0)


def test_fits_are_reused_through_the_cache():
    reps = _planted(np.random.default_rng(3), n=10)
    cache = FitCache()
    ccgp_scores(reps, cache=cache)
    n = cache.n_fitted
    assert n == sum(len(p) for p in DICHOTOMIES.values())
    swapped = {"AntiGo": reps["Go"]}
    ccgp_scores({**reps, **swapped}, keys={"AntiGo": ("swapped", "AntiGo")}, cache=cache,
                tasks={"AntiGo"})
    # only the pairs containing AntiGo are refitted (pro/anti and standard/RT)
    assert cache.n_fitted == n + 2


def _tiny_model(kind="structurenet", hidden=16, embeddings=None):
    from instructnet.embeddings import BUILTIN_MODELS
    from instructnet.models.network import build_model
    from instructnet.models.spec import model_spec

    spec = model_spec(kind, BUILTIN_MODELS)
    return build_model(spec, seed=0, embeddings=embeddings, hidden=hidden)


@pytest.fixture(scope="module")
def pools():
    return {t: TrialBatch.from_frame(generate_trials(t, 6, seed=i)) for i, t in enumerate(TASKS)}


def test_stimulus_onset_is_the_first_shown_stimulus(pools):
    frame = generate_trials("RTGo", 5, seed=0)
    onset = stimulus_onset(TrialBatch.from_frame(frame)).numpy()
    assert (onset == frame["go_on"].to_numpy()).all()  # RT: stimuli only in the go epoch
    frame = generate_trials("DM", 5, seed=0)
    assert (stimulus_onset(TrialBatch.from_frame(frame)).numpy() == frame["stim1_on"].to_numpy()).all()


def test_representations_of_a_rule_model(pools, tmp_path):
    model = _tiny_model()
    df = model_representations(model, pools, None, n_trials=4, seed=5)
    assert set(df["layer"]) == {"rule", "embedding", "rnn"} and set(df["variant"]) == {"standard"}
    rnn = layer_arrays(df, "standard", "rnn")
    assert set(rnn) == set(TASKS) and rnn["Go"].shape == (4, 16)
    assert layer_arrays(df, "standard", "embedding")["Go"].shape == (1, 64)
    # the state at onset equals the full forward pass at that step
    from instructnet.seeding import seed_int
    from instructnet.tasks.rendering import render

    trials = pools["DM"][torch.arange(4)]
    gen = torch.Generator().manual_seed(seed_int(5, "representations", "standard", "DM"))
    r = render(trials, noise=True, generator=gen)
    vec = model.task_vectors(torch.full((4,), TASKS.index("DM")))
    with torch.no_grad():
        _, h = model(r.inputs, vec)
    onset = stimulus_onset(trials)
    np.testing.assert_allclose(rnn["DM"], h[torch.arange(4), onset].numpy(), rtol=1e-5, atol=1e-6)
    # Parquet round trip, byte-reproducible
    write_representations(df, tmp_path / "a.parquet")
    write_representations(model_representations(model, pools, None, 4, 5), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = read_representations(tmp_path / "a.parquet")
    np.testing.assert_array_equal(layer_arrays(back, "standard", "rnn")["Go"], rnn["Go"])
    with pytest.raises(ValueError, match="need 7"):
        model_representations(model, pools, None, n_trials=7, seed=5)


def test_instructed_model_gets_swapped_variant(pools):
    torch.manual_seed(0)
    emb = torch.randn(3 * len(TASKS), 12)
    model = _tiny_model("bownet", embeddings=emb)
    sentences = {t: torch.arange(3 * i, 3 * i + 3) for i, t in enumerate(TASKS)}
    df = model_representations(model, pools, sentences, 4, 0, swapped={"AntiGo": "Go"})
    assert set(df["layer"]) == {"embedding", "rnn"}
    std_emb = layer_arrays(df, "standard", "embedding")
    sw_emb = layer_arrays(df, "swapped", "embedding")
    assert set(sw_emb) == {"AntiGo"} and std_emb["Go"].shape == (3, 64)
    np.testing.assert_array_equal(sw_emb["AntiGo"], std_emb["Go"])  # Go's instructions
    assert layer_arrays(df, "swapped", "rnn")["AntiGo"].shape == (4, 16)


def test_model_ccgp_orders_the_hierarchy_and_reuses_language_rows(pools):
    rng = np.random.default_rng(0)
    lang_layers = [(f"lm{k}", _planted(rng, n=5, d=24)) for k in range(3)]
    language = layer_ccgp(lang_layers)
    assert list(pd.unique(language["layer"])) == ["lm0", "lm1", "lm2"]
    model_layers = {"standard": {"embedding": _planted(rng, n=5, d=24), "rnn": _planted(rng, n=20)},
                    "swapped": {"embedding": {"AntiGo": rng.normal(size=(5, 24))},
                                "rnn": {"AntiGo": rng.normal(size=(20, 32))}}}
    out = model_ccgp(model_layers, language)
    order = out.drop_duplicates("layer").sort_values("depth")
    assert list(order["layer"]) == ["lm0", "lm1", "lm2", "embedding", "rnn"]
    assert list(order["position"]) == [-4, -3, -2, -1, 0]
    sw = out[out["variant"] == "swapped"]
    assert set(sw["task"]) == {"AntiGo"} and set(sw["layer"]) == {"embedding", "rnn"}
    # planted geometry everywhere but the swapped (random) samples
    assert out.loc[out["variant"] == "standard", "score"].min() > 0.9
    assert sw["score"].mean() < 0.9


def test_language_layers_read_the_cache_and_fall_back_to_bow(tmp_path, corpus):
    from instructnet.embeddings.cache import write_embeddings, write_layers

    n = len(corpus)
    rng = np.random.default_rng(0)
    write_layers(corpus, rng.normal(size=(2, n, 4)).astype(np.float32), tmp_path / "l.parquet")
    write_embeddings(corpus, rng.normal(size=(n, 5)), tmp_path / "p.parquet")
    layers = language_layers(tmp_path / "l.parquet", tmp_path / "p.parquet")
    assert [name for name, _ in layers] == ["lm0", "lm1"]
    assert layers[0][1]["Go"].shape == (15, 4)  # the 15 training instructions
    write_layers(corpus, np.zeros((0, n, 4), np.float32), tmp_path / "e.parquet")
    bow = language_layers(tmp_path / "e.parquet", tmp_path / "p.parquet")
    assert [name for name, _ in bow] == ["bow"] and bow[0][1]["DM"].shape == (15, 5)


def test_pca_table_of_a_tiny_model(pools):
    model = _tiny_model()
    df = model_representations(model, pools, None, 6, 0, tasks=PCA_TASKS)
    pca = pca_table({("swap9", "structurenet", 0): df}, PCA_TASKS)
    rnn = pca[pca["layer"] == "rnn"]
    assert len(rnn) == 24 and set(rnn["task"]) == set(PCA_TASKS)
    # PCs are centred projections with decreasing explained variance
    assert abs(rnn["pc1"].mean()) < 1e-6
    ev = rnn[["explained1", "explained2", "explained3"]].iloc[0].to_numpy()
    assert (np.diff(ev) <= 1e-12).all() and ev.sum() <= 1 + 1e-9
    emb = pca[pca["layer"] == "embedding"]
    assert len(emb) == 4  # one rule vector per task


def test_aggregate_tables_and_zero_shot_points():
    rng = np.random.default_rng(0)
    held = {"swap9": ["AntiGo", "AntiDMMod1"], "multitask": []}
    files = {}
    for h in held:
        for m in ("simplenet", "structurenet"):
            for s in (0, 1, 2):
                layers = {"standard": {"rnn": _planted(rng, noise=0.5 if m == "structurenet" else 5, n=8)}}
                files[(h, m, s)] = model_ccgp(layers)
    table = stack_ccgp(files, held)
    assert table.loc[table["holdout"] == "multitask", "heldout"].sum() == 0
    assert set(table.loc[table["heldout"], "task"]) == {"AntiGo", "AntiDMMod1"}
    summary = ccgp_summary(table, held)
    assert set(summary["condition"]) == {"heldout", "all_tasks"}
    h = summary[summary["condition"] == "heldout"]
    assert len(h) == 6 and (h["n_tasks"] == 2).all()
    welch = neighbour_welch(summary)
    row = welch[(welch["condition"] == "all_tasks")].iloc[0]
    assert (row["model_a"], row["model_b"]) == ("simplenet", "structurenet")
    assert row["t"] > 0 and row["p"] < 0.05  # the planted model is better
    zs = pd.DataFrame({"holdout": "swap9", "model": ["simplenet", "structurenet"] * 2,
                       "seed": 0, "task": ["AntiGo", "AntiGo", "AntiDMMod1", "AntiDMMod1"],
                       "accuracy": [0.1, 0.9, 0.2, 0.8]})
    points = ccgp_vs_zero_shot(table, zs)
    assert len(points) == 4 and set(points.columns) == {"model", "task", "ccgp", "zero_shot"}
    p = points.set_index(["model", "task"])
    assert p.loc[("structurenet", "AntiGo"), "ccgp"] > p.loc[("simplenet", "AntiGo"), "ccgp"]
    # the r that fig3e draws and fidelity.md reports, per scoring rule
    from scipy import stats as sps

    from instructnet.analysis import paper

    c = paper.ccgp_correlation(table, zs)
    expected = sps.pearsonr(points["ccgp"], points["zero_shot"])
    assert c["n"] == 4 and c["r"] == pytest.approx(expected.statistic)
    assert c["p"] == pytest.approx(expected.pvalue)
    both = pd.concat([zs.assign(scoring="strict"),
                      zs.assign(scoring="paper", accuracy=zs["accuracy"] ** 0.5)])
    lines = paper.headline_lines(table, both)
    strict_line = next(line for line in lines if "| strict |" in line)
    assert f"r = {c['r']:.3f}" in strict_line and "n = 4" in strict_line
    assert any("| paper |" in line for line in lines)
    assert np.isnan(paper.ccgp_correlation(table, zs.iloc[:2])["r"])  # fewer than 3 points


def test_figure3e_draws_the_points_and_r_of_the_tables(tmp_path, monkeypatch):
    """Figure 3e's dots are ccgp_vs_zero_shot's points, one per (model, held-out task),
    and its annotation is the r that fidelity.md reports."""
    from instructnet.analysis import paper
    from instructnet.figures import fig3

    rng = np.random.default_rng(1)
    held = {"swap9": ["AntiGo", "AntiDMMod1"]}
    files = {("swap9", m, s): model_ccgp({"standard": {"rnn": _planted(rng, noise=n, n=8)}})
             for m, n in (("simplenet", 5), ("structurenet", 0.5)) for s in (0, 1)}
    table = stack_ccgp(files, held)
    zs = pd.DataFrame({"holdout": "swap9", "model": ["simplenet", "structurenet"] * 2,
                       "seed": 0, "task": ["AntiGo", "AntiGo", "AntiDMMod1", "AntiDMMod1"],
                       "accuracy": [0.1, 0.9, 0.3, 0.7]})
    saved = []
    monkeypatch.setattr(fig3, "save_figure", lambda fig, out: saved.append(fig))
    fig3.fig3e_ccgp_zero_shot(table, zs, tmp_path / "e.png")
    ax = saved[0].axes[0]
    drawn = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    points = ccgp_vs_zero_shot(table, zs)
    expected = points[["ccgp", "zero_shot"]].to_numpy()
    np.testing.assert_allclose(drawn[np.lexsort(drawn.T[::-1])],
                               expected[np.lexsort(expected.T[::-1])])
    r = paper.ccgp_correlation(table, zs)["r"]
    assert any(f"Pearson r = {r:.3f}" in t.get_text() for t in ax.texts)
