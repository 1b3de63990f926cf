"""The design-experiment tool (python -m instructnet.bench design): holdout principle,
output table, held-out tasks never trained (tiny networks, a few batches)."""

import json

import pandas as pd
import pytest

from instructnet.bench import design
from instructnet.bench.__main__ import main as bench_main
from instructnet.tasks.constants import FAMILIES, FAMILY_OF, STRUCTURE


def test_principle_on_the_go_and_dm_tasks():
    tasks = design.task_set("go_dm")
    assert len(tasks) == 20 and not any(t.startswith("Con") for t in tasks)
    # AntiGoMod2 = v(A) - v(B) + v(C) of three other Go tasks, all features trained
    triples = design.compositional_triples("AntiGoMod2", [t for t in tasks if t != "AntiGoMod2"])
    assert triples
    for a, b, c in triples:
        assert [x - y + z for x, y, z in zip(STRUCTURE[a], STRUCTURE[b], STRUCTURE[c])] == \
            list(STRUCTURE["AntiGoMod2"])
    assert not design.check_group(tasks, ["AntiGoMod2", "AntiDMMod1"])
    # a task whose 'anti' feature is never trained cannot be held out
    only_pro = ["Go", "RTGo", "GoMod1", "GoMod2", "AntiGo"]
    assert design.check_group(only_pro, ["AntiGo"])
    # holding out all the anti Go tasks leaves 'anti' seen only in DM; no triple for AntiGo
    anti_go = [t for t in FAMILIES["Go"] if t.startswith("Anti")]
    assert design.check_group(tasks, anti_go)
    groups = design.principled_groups(tasks, 3, seed=0)
    assert len(set(groups)) == 3
    for g in groups:
        assert sorted(FAMILY_OF[t] for t in g) == ["DM", "Go"]
        assert not design.check_group(tasks, g)


def test_make_jobs_rejects_a_group_that_breaks_the_principle():
    with pytest.raises(ValueError, match="principle"):
        design.make_jobs(["Go,RTGo,GoMod1,GoMod2,AntiGo"], {"x": ["AntiGo"]}, ["simplenet"], [0])


TINY = ["--batches", "12", "--batches-per-epoch", "6", "--eval-every", "6", "--hidden", "16",
        "--train-trials", "8", "--curve-trials", "4", "--heldout-trials", "16"]


@pytest.mark.parametrize("packed", [False, True])
def test_sweep_table(tmp_path, capsys, packed):
    out = tmp_path / "design"
    args = ["design", "--task-set", "Go,AntiGo,RTGo,AntiRTGo,GoMod1,GoMod2",
            "--group", "g=AntiRTGo", "--models", "simplenet", "structurenet",
            "--seeds", "0", "1", "--out", str(out), "--jobs", "1", "--lr-final-steps", "1", *TINY]
    if packed:
        args += ["--packed", "--device", "cpu"]
    bench_main(args)
    printed = json.loads(capsys.readouterr().out)
    assert printed["jobs"] == 4 and len(printed["final"]) == 4
    table = pd.read_parquet(out / "design.parquet")
    assert list(table.columns) == list(design.COLUMNS)
    assert set(table["model"]) == {"simplenet", "structurenet"}
    assert set(table["seed"]) == {0, 1}
    assert sorted(set(table["batches"])) == [6, 12]
    assert set(table["kind"]) == {"train", "heldout", "train_batches"}
    # the held-out task is scored zero-shot and is never a training task
    held = table[table["kind"] == "heldout"]
    assert set(held["task"]) == {"AntiRTGo"} and (held["trials"] == 16).all()
    trained = table[table["kind"] != "heldout"]
    assert "AntiRTGo" not in set(trained["task"])
    assert set(trained["task"]) == {"Go", "AntiGo", "RTGo", "GoMod1", "GoMod2"}
    final = table[(table["kind"] == "train") & (table["batches"] == 12)]
    assert (final["trials"] == 8).all() and len(final) == 4 * 5
    assert table["accuracy"].between(0, 1).all()
    assert (table["cpu_seconds"] > 0).all()
    # the in-training log saw exactly the training tasks' batches: 12 batches per job
    last_epoch = table[(table["kind"] == "train_batches") & (table["batches"] == 12)]
    assert last_epoch.groupby(["model", "seed"])["trials"].sum().eq(6).all()
    summary = json.loads((out / "summary.json").read_text())
    assert {s["model"] for s in summary} == {"simplenet", "structurenet"}
    assert all(set(s["zero_shot"]) == {"AntiRTGo"} for s in summary)
    assert not any((out / "partial").glob("*.parquet"))  # curves of unfinished jobs only
    # --collect gathers the finished jobs without training
    bench_main(["design", "--collect", "--out", str(out)])
    capsys.readouterr()
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "design.parquet").sort_values(list(table.columns)).reset_index(drop=True),
        table.sort_values(list(table.columns)).reset_index(drop=True))
    # a second call reuses the finished jobs
    before = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()}
    bench_main(args)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()} == before


def test_a_stopped_pack_keeps_its_curves(tmp_path, monkeypatch, capsys):
    """A packed sweep cut off after its first evaluation point (here: an error at the
    second, as a time limit would) leaves each network's curve so far under partial/,
    and --collect gathers it."""
    out = tmp_path / "design"
    args = ["design", "--task-set", "Go,AntiGo,RTGo,AntiRTGo,GoMod1,GoMod2",
            "--group", "g=AntiRTGo", "--models", "simplenet", "structurenet", "--seeds", "0",
            "--out", str(out), "--packed", "--device", "cpu", *TINY]
    log_point = design._log_point

    def stop_at_the_end(job, rows, batches, cpu):
        log_point(job, rows, batches, cpu)
        if batches == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(design, "_log_point", stop_at_the_end)
    with pytest.raises(KeyboardInterrupt):
        bench_main(args)
    assert not any((out / "jobs").glob("*.parquet"))
    assert len(list((out / "partial").glob("*.parquet"))) == 2
    bench_main(["design", "--collect", "--out", str(out)])
    capsys.readouterr()
    table = pd.read_parquet(out / "design.parquet")
    assert set(table["batches"]) == {6}
    assert set(table["model"]) == {"simplenet", "structurenet"}
    assert set(table[table["kind"] == "heldout"]["task"]) == {"AntiRTGo"}


def _synthetic(curves):
    """A design table from {(group, model, seed): [(batches, train acc, zero-shot acc)]}:
    two training tasks at the given accuracy, one held-out task."""
    rows = []
    for (group, model, seed), points in curves.items():
        for batches, train, zs in points:
            for kind, task, acc in (("train", "Go", train), ("train", "AntiGo", train),
                                    ("heldout", "RTGo", zs)):
                rows.append({"task_set": "go", "group": group, "model": model, "seed": seed,
                             "batches": batches, "kind": kind, "task": task, "accuracy": acc,
                             "trials": 8, "cpu_seconds": 1.0, "wall_seconds": 1.0})
    return pd.DataFrame(rows).astype(design.COLUMNS)


def test_compare_sweeps_over_groups_and_seeds(tmp_path, capsys):
    a = _synthetic({("A", "simplenet", 0): [(2, 0.5, 0.1), (4, 0.9, 0.2), (6, 0.95, 0.2)],
                    ("A", "simplenet", 1): [(2, 0.7, 0.3), (4, 0.8, 0.4), (6, 0.86, 0.4)],
                    ("B", "simplenet", 0): [(2, 0.6, 0.0), (4, 0.6, 0.0), (6, 0.6, 0.0)]})
    b = _synthetic({("A", "simplenet", 0): [(2, 0.9, 0.5), (4, 0.95, 0.6)]})
    curves, first = design.compare({"x": a, "y": b}, target=0.85, at_most=4)
    at4 = curves[(curves["label"] == "x") & (curves["batches"] == 4)].iloc[0]
    assert at4["networks"] == 3
    assert at4["train_mean"] == pytest.approx((0.9 + 0.8 + 0.6) / 3, abs=1e-3)
    assert (at4["train_lo"], at4["train_hi"]) == (0.6, 0.9)
    assert at4["zero_shot_mean"] == pytest.approx(0.2, abs=1e-3)
    assert 6 not in set(curves["batches"])  # at_most
    fx = first[first["label"] == "x"].iloc[0]
    # only (A, simplenet, 0) reaches 0.85 within 4 batches, at 4
    assert (fx["networks"], fx["reached"], fx["first_min"], fx["first_max"]) == (3, 1, 4, 4)
    fy = first[first["label"] == "y"].iloc[0]
    assert (fy["reached"], fy["first_min"]) == (1, 2)
    # the CLI reads a design.parquet or its folder
    a.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b").mkdir()
    b.to_parquet(tmp_path / "b" / "design.parquet")
    bench_main(["design", "--compare", f"x={tmp_path / 'a.parquet'}", f"y={tmp_path / 'b'}"])
    out = json.loads(capsys.readouterr().out)
    assert {c["label"] for c in out["curves"]} == {"x", "y"}
    assert {f["label"]: f["reached"] for f in out["first_at_target"]} == {"x": 2, "y": 1}


def test_compare_on_the_same_seeds_and_per_task(tmp_path, capsys):
    a = _synthetic({("A", "simplenet", 0): [(2, 0.5, 0.1), (4, 0.9, 0.2)],
                    ("A", "simplenet", 1): [(2, 0.7, 0.3), (4, 0.7, 0.4)],
                    ("A", "simplenet", 2): [(2, 0.1, 0.0), (4, 0.1, 0.0)]})
    curves, first = design.compare({"x": a}, at_most=4, seeds=[0, 1])
    at4 = curves[curves["batches"] == 4].iloc[0]
    assert at4["networks"] == 2 and at4["train_mean"] == pytest.approx(0.8)
    assert first.iloc[0]["networks"] == 2
    # per task, at each network's last point (here 4); the tasks' own accuracies
    a.loc[(a["task"] == "AntiGo") & (a["seed"] == 0) & (a["batches"] == 4), "accuracy"] = 0.3
    tasks = design.per_task({"x": a}, seeds=[0, 1]).set_index("task")
    assert tasks.loc["Go", "accuracy"] == pytest.approx(0.8)
    assert tasks.loc["AntiGo", "accuracy"] == pytest.approx(0.5)
    assert (tasks.loc["AntiGo", "lo"], tasks.loc["AntiGo", "hi"]) == (0.3, 0.7)
    assert set(tasks["networks"]) == {2} and set(tasks["batches"]) == {4}
    assert "RTGo" not in tasks.index  # held out: not a training task
    a.to_parquet(tmp_path / "a.parquet")
    bench_main(["design", "--compare", f"x={tmp_path / 'a.parquet'}", "--only-seeds", "0",
                "--per-task"])
    out = json.loads(capsys.readouterr().out)
    assert {t["task"]: t["accuracy"] for t in out["per_task"]} == {"AntiGo": 0.3, "Go": 0.9}


def test_design_jobs_train_by_the_workflows_schedule():
    """A design job's training settings: its batches as epochs (no early stop), the
    per-epoch decay, and the last-epochs step counted back from its last epoch."""
    cfg = design.DesignConfig(batches=3000, batches_per_epoch=500, batch_size=16,
                              lr_final_steps=(2, 1))
    tcfg = cfg.train_config()
    assert (tcfg.min_epochs, tcfg.max_epochs, tcfg.batch_size) == (6, 6, 16)
    assert tcfg.epoch_lr_factor == pytest.approx(0.95 ** (500 / 2400))
    assert [tcfg.lr_factor(e) / tcfg.epoch_lr_factor ** e for e in range(6)] == pytest.approx(
        [1, 1, 1, 1, 0.25, 0.0625])
