"""`make gpu-check` without a GPU, and which rules ask for a GPU (#15)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_gpu_check_without_cuda_prints_one_line_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "instructnet.bench", "gpu", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU available" in lines[0]
    assert not out.exists()


def test_makefile_has_gpu_check_target():
    text = (REPO / "Makefile").read_text()
    assert re.search(r"^gpu-check: setup\n\t\$\(BIN\)/python -m instructnet.bench gpu$", text, re.M)


def _rules():
    """(rule name, declares a gpu resource, script path) of every rule with a script; a
    rule's resources are the plan's (``PLAN.resources(stage)``)."""
    import yaml

    from instructnet.config import check_config
    from instructnet.plan import Plan

    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    plan = Plan(check_config(config), str(REPO))
    out = []
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for m in re.finditer(r"^\s*rule (\w+):\n(.*?)(?=^\s*rule \w+:|\Z)", text, re.M | re.S):
            body = m.group(2)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            if script:
                stage = re.search(r'PLAN\.resources\("(\w+)"\)', body)
                gpu = stage is not None and "gpu" in plan.resources(stage.group(1))
                out.append((m.group(1), gpu, (smk.parent / script.group(1)).resolve()))
    return out


def test_rules_that_request_a_gpu_use_one_and_only_those():
    rules = _rules()
    assert {"train", "evaluate", "representations", "units"} <= {r for r, _, _ in rules}
    for rule, gpu, script in rules:
        text = script.read_text()
        # a script computes where instructnet.job.start_job says (CUDA when visible) if
        # it keeps the device start_job returns and passes it on
        kept = re.search(r"^(\w+) = start_job\(snakemake\)", text, re.M)
        uses_cuda = "torch.cuda.is_available()" in text or bool(
            kept and re.search(rf"\b{kept.group(1)}\b", text[kept.end():]))
        assert gpu == uses_cuda, (
            f"rule {rule}: requests a GPU: {gpu}, but its script {script.name} "
            f"{'selects' if uses_cuda else 'never selects'} CUDA")


def test_slurm_profile_lists_the_gpu_rules():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for rule, gpu, _ in _rules():
        if gpu:
            assert rule in comment, f"profiles/slurm/config.yaml does not name GPU rule {rule}"
