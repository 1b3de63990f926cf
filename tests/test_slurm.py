"""The SLURM profile (profiles/slurm) against a real single-node SLURM.

Needs the local test cluster: `profiles/slurm/local_cluster.sh start` (root; installs
the Debian packages if missing). Without it these tests skip, unless
INSTRUCTNET_REQUIRE_SLURM=1 (set by .ci/run), then they fail.

The cluster has no accounting database, so snakemake runs with
`--slurm-status-command squeue` (the profile itself keeps the plugin's default, sacct,
which is right on clusters with accounting). Every run is wrapped in `timeout -k`:
snakemake may ignore SIGTERM once it lost track of its jobs.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PROFILE = REPO / "profiles" / "slurm"
CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by instructnet profiles/slurm/local_cluster.sh"
REQUIRE = os.environ.get("INSTRUCTNET_REQUIRE_SLURM") == "1"
# test-cluster-only flags: no accounting (squeue for job status), no account to guess,
# and frequent status checks (the plugin's default first waits 40 s)
TEST_FLAGS = ["--slurm-status-command", "squeue", "--slurm-no-account",
              "--slurm-init-seconds-before-status-checks", "2"]
# columns that hold wall-clock measurements, not results
WALL_CLOCK = {"seconds", "trials_per_s"}
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def cluster_problem():
    """Why the local test cluster cannot be used, or None when it can."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed"
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH"
    if not CONF.exists() or MARKER not in CONF.read_text():
        # never submit test jobs to a real site's cluster
        return f"{CONF} is not the local test cluster's"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out (slurmctld not answering)"
    if proc.returncode != 0:
        return f"sinfo failed: {proc.stderr.strip()}"
    states = proc.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"no usable node (sinfo states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        msg = (f"no SLURM test cluster reachable: {problem}; start one with "
               "`profiles/slurm/local_cluster.sh start` (as root)")
        if REQUIRE:
            pytest.fail(f"{msg} (INSTRUCTNET_REQUIRE_SLURM=1)", pytrace=False)
        pytest.skip(msg)


def snakemake_slurm(workdir, *args, timeout=1200):
    """snakemake through the SLURM profile, run from (and in) ``workdir``."""
    cmd = ["timeout", "-k", "30", str(timeout), SNAKEMAKE, "--profile", str(PROFILE),
           "--directory", str(workdir), *TEST_FLAGS, *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    return proc, proc.stdout + proc.stderr


def submissions(output):
    """(snakemake job, SLURM job id, SLURM log) of every sbatch submission, in order."""
    return SUBMITTED.findall(output)


def job_state(jobid):
    """SLURM's state of a job (finished jobs stay visible for MinJobAge=300 s)."""
    proc = subprocess.run(["squeue", "--states=all", "-h", "-j", str(jobid), "-o", "%T"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def relative_files(root, pattern):
    return sorted(p.relative_to(root) for p in (root / "results").rglob(pattern))


# What goes through SLURM: a slice of the test config's DAG, not all of it (every
# submission starts Snakemake inside the job: ~90 submissions took ~10 min). The slice
# holds every kind of job that matters here: trained and evaluated models of both
# holdouts and both models, a language model's embeddings, language production's
# decoder, motor feedback and produced instructions (submitted), and trial pools, the
# corpus and a stacked table (local rules on the submit host).
SLICE = ["results/tables/heldout.parquet",
         "results/production/swap9/sbertnet_minilm/seed0/produced.parquet"]


def test_workflow_through_slurm_equals_local_run(cluster, repo, request, tmp_path_factory):
    # the shared local run (conftest.py), requested only now: a session fixture named
    # in the signature would run before `cluster` could skip
    local = request.getfixturevalue("local_test_run")
    workdir = tmp_path_factory.mktemp("wf_slurm")
    args = ["--snakefile", str(repo / "Snakefile"), "--configfile",
            str(repo / "config" / "test.yaml")]
    proc, out = snakemake_slurm(workdir, *SLICE, *args)
    assert proc.returncode == 0, f"snakemake via SLURM failed (rc {proc.returncode}):\n{out[-6000:]}"

    # the compute rules went through sbatch (their SLURM logs are named by rule),
    # the light ones ran on the submit host
    submitted_rules = {Path(log).parts[-3] for _, _, log in submissions(out)}
    assert {"rule_train", "rule_evaluate", "rule_embed", "rule_production_decoder",
            "rule_motor_feedback", "rule_produce_instructions"} <= submitted_rules, submitted_rules
    assert not submitted_rules & {"rule_trial_pool", "rule_collect", "rule_corpus"}
    for rule in ("trial_pool", "corpus", "collect"):
        assert re.search(rf"localrule {rule}:", out), rule

    # every table the slice made equals the local run's (which made them all)
    tables = relative_files(workdir, "*.parquet")
    assert {Path(t) for t in SLICE} <= set(tables)
    assert len(tables) > 50  # pools, embeddings, models' logs, evaluations, production
    assert set(tables) <= set(relative_files(local, "*.parquet"))
    for rel in tables:
        ours, theirs = pd.read_parquet(workdir / rel), pd.read_parquet(local / rel)
        drop = sorted(WALL_CLOCK & set(theirs.columns))
        pd.testing.assert_frame_equal(ours.drop(columns=drop), theirs.drop(columns=drop),
                                      obj=str(rel))
    # a finished run is complete: nothing left to do
    proc, out = snakemake_slurm(workdir, *SLICE, *args, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in out, out[-3000:]


def test_failed_job_is_reported_by_slurm_and_retried(cluster, repo, tmp_path):
    snakefile = repo / "tests" / "data" / "slurm" / "Snakefile"
    proc, out = snakemake_slurm(tmp_path, "--snakefile", str(snakefile), "--retries", "1",
                                timeout=300)
    assert proc.returncode == 0, f"rc {proc.returncode}:\n{out[-6000:]}"
    jobs = submissions(out)
    assert len(jobs) == 2, out[-6000:]  # attempt 1, then the retry
    first, second = jobs[0][1], jobs[1][1]
    # SLURM saw attempt 1 fail (exit 3) and attempt 2 succeed ...
    assert job_state(first) == "FAILED"
    assert job_state(second) == "COMPLETED"
    # ... the plugin reported the failure, and Snakemake resubmitted the job
    assert f"SLURM-job '{first}' failed, SLURM status is: 'FAILED'" in out
    assert "Error in rule flaky" in out
    text = (tmp_path / "flaky.txt").read_text()
    assert f"attempt=2 job={second}" in text
    # `gpu: 1` reached sbatch as a GPU request: SLURM bound the (fake) GPU to the job
    assert "gpus=0" in text
    # the failed attempt's SLURM log is kept, and shows the job's own error
    failed_log = Path(jobs[0][2])
    assert failed_log.exists() and "failing on purpose" in failed_log.read_text()


def dry_run_resources(repo, workdir, targets, *args):
    """output path -> the resources snakemake -n lists for the job making it."""
    cmd = [SNAKEMAKE, "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(repo / "config" / "paper.yaml"), "-n", *args, *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = proc.stdout + proc.stderr
    found = {}
    for block in re.split(r"^(?:local)?rule \w+:$", out, flags=re.M):
        outputs = re.search(r"output: (.*)", block)
        resources = re.search(r"resources: (.*)", block)
        if not (outputs and resources):
            continue
        for target in set(outputs.group(1).split(", ")) & set(targets):
            found[target] = dict(
                kv.split("=", 1) for kv in resources.group(1).split(", ") if "=" in kv)
    assert set(found) == set(targets), (sorted(found), out[-3000:])
    return found


def test_cluster_resources_scale_with_model_size_and_attempt(repo, tmp_path):
    """The rules' cluster resources (no cluster needed): GPU jobs, memory and wall time
    by what a job loads, and more of both on a retry."""
    tuned_xl = "results/models/swap0/gptnet_xl_tuned/seed0/model.pt"
    plain = "results/models/swap0/sbertnet/seed0/model.pt"
    embed_xl, embed_base = "results/embeddings/gptnet_xl.parquet", "results/embeddings/bertnet.parquet"
    targets = [tuned_xl, plain, embed_xl, embed_base]
    first = dry_run_resources(repo, tmp_path, targets)
    assert first[tuned_xl]["gpu"] == first[plain]["gpu"] == first[embed_xl]["gpu"] == "1"
    assert int(first[tuned_xl]["mem_mb"]) > int(first[plain]["mem_mb"])
    assert int(first[tuned_xl]["runtime"]) > int(first[plain]["runtime"])
    assert int(first[embed_xl]["mem_mb"]) > int(first[embed_base]["mem_mb"])
    second = dry_run_resources(repo, tmp_path, targets, "--attempt", "2")
    for target in targets:
        for key in ("mem_mb", "runtime"):
            assert int(second[target][key]) == 2 * int(first[target][key]), (target, key)
