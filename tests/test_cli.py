"""The command-line tools: trial figures and the benchmark's JSON."""

import json
import subprocess
import sys

import pytest

from instructnet.cli import main


def test_trials_show_writes_png(tmp_path):
    out = tmp_path / "x.png"
    assert main(["trials", "show", "--task", "AntiDMMod1", "--n", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trials_show_from_pool(tmp_path):
    from instructnet.tasks import generate_trials, write_trials

    pool = tmp_path / "DMS.parquet"
    write_trials(generate_trials("DMS", 10, 0), pool)
    out = tmp_path / "dms.png"
    assert main(["trials", "show", "--pool", str(pool), "--index", "1", "2", "--out", str(out)]) == 0
    assert out.exists()


def test_unknown_task_is_a_clear_error(tmp_path, capsys):
    assert main(["trials", "show", "--task", "Nope", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown task 'Nope'" in capsys.readouterr().err


def test_module_entry_point_lists_tasks():
    out = subprocess.run([sys.executable, "-m", "instructnet", "tasks"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == 50 and out[0].startswith("Go ")


def test_bench_trials_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "instructnet.bench", "trials", "--batches", "20"],
        capture_output=True, text=True, check=True,
    ).stdout
    result = json.loads(out)
    assert result["benchmark"] == "trials"
    assert result["trials_per_s_noisy"] > 0 and result["trials_per_s_noise_free"] > 0


def test_bench_embed_prints_json():
    out = subprocess.run([sys.executable, "-m", "instructnet.bench", "embed"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["sentences"] == 1000 and result["dim"] == 384 and result["layers"] == 7
    assert result["seconds"] > 0


def test_bench_train_step_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "instructnet.bench", "train-step", "--hidden", "32",
         "--batch-size", "8", "--repeats", "1"],
        capture_output=True, text=True, check=True,
    ).stdout
    result = json.loads(out)
    assert result["benchmark"] == "train-step" and result["hidden"] == 32
    assert result["ms_fast"] > 0 and result["floor_ms"] > 0
    assert result["ratio_fast_to_floor"] == pytest.approx(result["ms_fast"] / result["floor_ms"], rel=0.1)  # rounded fields


def test_check_config_names_file_line_and_column_of_a_yaml_error(tmp_path, capsys, monkeypatch):
    # what `snakemake --configfile` cannot say: it reports "not valid JSON or YAML" only
    monkeypatch.chdir(tmp_path)  # no config/config.yaml here: the named file alone
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 7\ntrials:\n  pools: {train: 16\n  eval: 8\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {bad}:4:7: invalid YAML: expected ',' or '}}', but got ':' "
                   "(while parsing a flow mapping at line 3)"]


def test_check_config_overlays_the_default_config_and_checks_it(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == "config OK: config/config.yaml\n"
    overlay = tmp_path / "my.yaml"
    overlay.write_text("training: {lrr: 0.01}\n")
    assert main(["check-config", str(overlay)]) == 2
    assert capsys.readouterr().err == (
        "error: invalid config: training.lrr: unknown key; did you mean training.lr? (training "
        "takes: seeds, hidden, batch_size, batches_per_epoch, lr, lr_decay, lr_decay_batches, "
        "lr_final_steps, lr_final_factor, min_epochs, max_epochs, threshold, threshold_gpt, grad_clip, criterion_scoring, "
        "embedding_norm, packing)\n")
    overlay.write_text("production: {enabled: false}\n")
    assert main(["check-config", str(overlay)]) == 0
