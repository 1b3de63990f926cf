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
