"""Every command line the README and docs/*.md show runs: each `snakemake …` (code
blocks and inline code) as a dry run, each `python -m instructnet check-config …` as it
is, from a copy of the repository's layout (links) as the working directory."""

import re

import pytest

# files the README's commands name that a user makes: a copy of the config with packing
MADE_BY_THE_USER = {"my.yaml": "training: {packing: {by: seeds}}\n"}
# the paper's DAG (~11,800 jobs) takes a minute to build: config/test.yaml over it keeps
# the command's shape (profile, resources, targets, config files) and makes it small
SHRINK = {"config/paper.yaml": "config/test.yaml"}
STOP = re.compile(r"^(#|\||\\\||>)")  # a comment, a pipe, a redirection: the command ends


def _code(text):
    """(line, offset, code) of every line of a shell code block and every inline code
    span (which may wrap onto the next line; inside other blocks too) of a Markdown text,
    in reading order."""
    out, prose, shell = [], [], False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            shell = line.strip() in ("```bash", "```sh", "```console")
            line = ""
        elif shell:
            out.append((i, 0, line))
            line = ""
        prose.append(line)
    prose = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", prose):
        line = prose.count("\n", 0, m.start())
        out.append((line, m.start(), m.group(1).replace("\n", " ")))
    return sorted(out)


def _words(code):
    words = []
    for w in code.split():
        if STOP.match(w):
            break
        words.append(w)
    return words


def readme_commands(text, program):
    """Command lines of ``program`` (``snakemake`` or ``python -m instructnet``) the text
    shows, as argument lists. An inline ``--option`` span right after a snakemake span on
    the same line (`snakemake -n` (add `--dag | dot …`)) extends it."""
    commands, last = [], None
    for line, _, code in _code(text):
        if program == "snakemake" and code.startswith("--") and last and last[0] == line:
            commands.append(last[1] + _words(code))
            continue
        for m in re.finditer(rf"(?<![\w/.-]){re.escape(program)}(?=\s|$)", code):
            args = _words(code[m.end():])
            commands.append(args)
            last = (line, args)
    return [list(c) for c in dict.fromkeys(map(tuple, commands))]


def _dry(args):
    """A snakemake command line as a dry run, the paper's config shrunk."""
    args = [a for a in args if a not in ("-n", "--dry-run")] + ["-n"]
    for big, small in SHRINK.items():
        if big in args:
            args.insert(args.index(big) + 1, small)  # --configfile takes several files
    return args


@pytest.fixture(scope="module")
def readme(repo):
    # the README and the documentation it links to: every page's commands
    pages = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return "\n\n".join(p.read_text() for p in pages)


@pytest.fixture(scope="module")
def checkout(repo, tmp_path_factory):
    """A working directory laid out like the repository (links), with the user's files."""
    wd = tmp_path_factory.mktemp("readme")
    for name in ("Snakefile", "workflow", "scripts", "config", "profiles", "instructnet"):
        (wd / name).symlink_to(repo / name)
    for name, text in MADE_BY_THE_USER.items():
        (wd / name).write_text(text)
    return wd


def test_the_readme_shows_every_kind_of_command(readme):
    commands = readme_commands(readme, "snakemake")
    assert len(commands) >= 12
    shown = " ".join(" ".join(c) for c in commands)
    for option in ("--configfile", "--profile", "--report", "--force", "--dag", "--resources"):
        assert option in shown, option
    assert any(a.startswith("results/") and prev != "--report"  # a target
               for c in commands for prev, a in zip(["snakemake", *c], c))
    assert readme_commands(readme, "python -m instructnet check-config")


def test_every_readme_command_runs(readme, checkout, cli_batch):
    snakemake = [list(c) for c in dict.fromkeys(tuple(_dry(c)) for c in
                                                readme_commands(readme, "snakemake"))]
    checks = readme_commands(readme, "python -m instructnet check-config")
    results = cli_batch([(checkout, "snakemake", c) for c in snakemake]
                        + [(checkout, "instructnet", ["check-config", *c]) for c in checks])
    failed = []
    for args, (code, out) in zip(snakemake + checks, results):
        # a report gathers a finished run's figures (built for real in test_workflow.py);
        # from an empty directory it gets as far as the first missing figure
        if "--report" in args and "marked for report but does not exist" in out:
            continue
        if code != 0 or ("--dag" in args and "digraph" not in out):
            failed.append(f"{' '.join(args)}\n{out[-1500:]}")
    assert not failed, "\n\n".join(failed)
