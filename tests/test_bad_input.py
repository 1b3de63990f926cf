"""Bad input through the real CLI (`snakemake -n` on the Snakefile): each mistake fails
before any job runs with one short message naming the key or file, and results that
exist stay as they were. (A model.pt that is not one: tests/test_training.py.)"""

import re

import pytest
import yaml

# results a run made before: a failing run must neither delete nor rewrite them
RESULTS = {"results/tables/fidelity.md": b"| an earlier run |\n",
           "results/instructions/corpus.parquet": b"PAR1 an earlier corpus"}
BAD_YAML = "seed: 7\ntrials:\n  pools: {train: 16\n  eval: 8\n"  # unclosed {


def changed(change, name="test.yaml"):
    """config/<name> with ``change`` applied, as the --configfile."""
    def make(repo, wd):
        config = yaml.safe_load((repo / "config" / name).read_text())
        change(config)
        (wd / "my.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return ["--configfile", str(wd / "my.yaml")]
    return make


def overlay(text):
    """config/test.yaml, then a file with ``text`` over it."""
    def make(repo, wd):
        (wd / "overlay.yaml").write_text(text)
        return ["--configfile", str(repo / "config" / "test.yaml"), str(wd / "overlay.yaml")]
    return make


def raw(text, default=False):
    """A config file of ``text``: the --configfile, or (default) the working directory's
    config/config.yaml, which the Snakefile reads itself."""
    def make(repo, wd):
        path = wd / ("config/config.yaml" if default else "my.yaml")
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return [] if default else ["--configfile", str(path)]
    return make


def command_line(*args):
    return lambda repo, wd: ["--configfile", str(repo / "config" / "test.yaml"), *args]


def both(*changes):
    def change(config):
        for c in changes:
            c(config)
    return change


MISTAKES = [
    ("unknown top-level key", changed(lambda c: c.update(trainign={"lr": 0.1})),
     "trainign: unknown key; did you mean training?"),
    ("unknown nested key", changed(lambda c: c["training"].update(lrr=0.01)),
     "training.lrr: unknown key; did you mean training.lr?"),
    ("unknown key in an overlay", overlay("production: {decoder: {hiden: 8}}\n"),
     "production.decoder.hiden: unknown key; did you mean production.decoder.hidden?"),
    ("wrong type", changed(lambda c: c["training"].update(lr="fast")),
     "training.lr: 'fast' is not allowed; expected a number > 0"),
    ("out of range on the command line", command_line("--config", "seed=-1"),
     "seed: -1 is less than the minimum of 0"),
    # Snakemake parses --configfile before the Snakefile: its message, short but without
    # file or line (check-config has them: test_check_config_says_where_the_yaml_breaks)
    ("malformed YAML in --configfile", raw(BAD_YAML), "Config file is not valid JSON or YAML"),
    ("malformed YAML in config/config.yaml", raw(BAD_YAML, default=True),
     "config/config.yaml:4:7: invalid YAML: expected ',' or '}', but got ':'"),
    ("unknown stimulus convention", changed(lambda c: c["trials"].update(convention="ref")),
     "trials.convention: 'ref' is not allowed; expected one of paper, reference"),
    ("missing instructions file", changed(lambda c: c.update(instructions="mine.yaml")),
     "instructions: file 'mine.yaml' does not exist"),
    ("missing Con threshold table", changed(lambda c: c["trials"].update(con_thresholds="t.csv")),
     "trials.con_thresholds: file 't.csv' does not exist"),
    ("missing language-model folder",
     changed(both(lambda c: c["language_model_registry"].update(mine={"source": "./lm/mine"}),
                  lambda c: c["language_models"].append("mine"))),
     "language_model_registry.mine.source: './lm/mine' is neither an existing folder"),
    ("holdout outside the task set", changed(lambda c: c.update(holdouts=["swap9"]),
                                             "test_reduced.yaml"),
     "holdouts: holdout group 'swap9' holds out tasks that are not in the study"),
    ("analysis.trials above the eval pool", changed(lambda c: c["analysis"].update(trials=9)),
     "analysis.trials (9) exceeds trials.pools.eval (8)"),
    ("unknown model", changed(lambda c: c["models"].append("gpt5net")),
     "models: unknown model 'gpt5net'"),
    ("stage switched off with null", overlay("production: null\n"),
     "production: null is not allowed; expected a mapping (to switch the stage off: "
     "production: {enabled: false})"),
]
# stages switched off from an overlay: the rest is still made
SWITCHES = [
    ("production off", overlay("production: {enabled: false}\n"),
     ["production_decoder", "partner_eval"], ["fig5"]),
    ("analysis off", overlay("analysis: {enabled: false}\n"),
     ["representations", "ccgp", "units"], ["fig3", "fig4", "supp_task_variance"]),
]


@pytest.fixture(scope="module")
def runs(repo, tmp_path_factory, cli_batch):
    """Every case's (exit code, output, working directory), one batch of snakemake -n."""
    commands, workdirs = [], []
    for _, make, *_ in MISTAKES + SWITCHES:
        wd = tmp_path_factory.mktemp("bad")
        for rel, content in RESULTS.items():
            (wd / rel).parent.mkdir(parents=True, exist_ok=True)
            (wd / rel).write_bytes(content)
        args = make(repo, wd)
        commands.append((wd, "snakemake", ["--snakefile", str(repo / "Snakefile"),
                                           "--directory", str(wd), "-n", *args]))
        workdirs.append(wd)
    stamps = [{rel: (wd / rel).stat().st_mtime_ns for rel in RESULTS} for wd in workdirs]
    results = cli_batch(commands)
    names = [case[0] for case in MISTAKES + SWITCHES]
    return {n: (*r, wd, s) for n, r, wd, s in zip(names, results, workdirs, stamps)}


def _results_untouched(wd, stamps):
    for rel, content in RESULTS.items():
        assert (wd / rel).read_bytes() == content, rel
        assert (wd / rel).stat().st_mtime_ns == stamps[rel], rel


@pytest.mark.parametrize("name, message", [(n, m) for n, _, m in MISTAKES],
                         ids=[n for n, _, _ in MISTAKES])
def test_a_mistake_fails_at_once_with_one_short_message(runs, name, message):
    code, out, wd, stamps = runs[name]
    assert code != 0, out
    assert message in out, out
    assert len(out.strip().splitlines()) <= 5, out  # message, its location, nothing else
    assert "Building DAG" not in out  # before any rule is looked at
    _results_untouched(wd, stamps)


@pytest.mark.parametrize("name, rules, panels", [(n, r, f) for n, _, r, f in SWITCHES],
                         ids=[n for n, *_ in SWITCHES])
def test_a_stage_switched_off_leaves_the_rest(runs, name, rules, panels):
    code, out, wd, stamps = runs[name]
    assert code == 0, out
    jobs = {line.split()[0] for line in out.split("Job stats:")[1].split("total")[0].splitlines()[3:]
            if line.strip()}
    assert not jobs & set(rules), jobs
    assert {"train", "evaluate", "figure", "all"} <= jobs
    figures = set(re.findall(r"results/figures/(\w+)\.png", out))
    assert not {f for f in figures if f.startswith(tuple(panels))}, figures
    assert "fig2a_learning_curves" in figures  # Figure 2 and the rest remain
    assert (name == "analysis off") == ("fig5d_examples" in figures)
    _results_untouched(wd, stamps)


def test_check_config_says_where_the_yaml_breaks(tmp_path, cli_batch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_YAML)
    [(code, out)] = cli_batch([(tmp_path, "instructnet", ["check-config", str(bad)])])
    assert code == 2
    assert out.strip() == (f"error: {bad}:4:7: invalid YAML: expected ',' or '}}', but got "
                           "':' (while parsing a flow mapping at line 3)")
