"""The HTML report gathers every figure: each figure rule marks its PNG with report(...)
and a caption file that exists. (The report itself is built from a real run in
tests/test_workflow.py::test_report_has_every_figure_with_its_caption.)"""

import re

import pytest

RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |^def |\Z)", re.M | re.S)


def _rules(repo):
    for smk in sorted((repo / "workflow" / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            yield smk, name, body


def _output_block(body: str) -> str:
    m = re.search(r"^    output:\n(.*?)(?=^    \w+:|\Z)", body, re.M | re.S)
    return m.group(1) if m else ""


def _report_args(output: str, png: str) -> str | None:
    """The arguments after the path of the report(...) call that marks ``png``."""
    call = re.search(r'report\(\s*"' + re.escape(png) + '"', output)
    if not call:
        return None
    depth, end = 1, call.end()
    while depth:
        depth += {"(": 1, ")": -1}.get(output[end], 0)
        end += 1
    return output[call.end():end - 1]


def test_every_figure_rule_reports_its_png_with_a_caption(repo):
    figure_rules = 0
    for smk, name, body in _rules(repo):
        output = _output_block(body)
        pngs = re.findall(r'"(results/figures/[^"]+\.png)"', output)
        if not pngs:
            continue
        figure_rules += 1
        for png in pngs:
            args = _report_args(output, png)
            assert args is not None, f"{smk.name}: rule {name} does not mark {png} with report(...)"
            assert "category=" in args, f"rule {name}: report() without a category"
            caption = re.search(r'caption="([^"]+)"', args)
            assert caption, f"rule {name}: report() without a caption"
            assert (smk.parent / caption.group(1)).resolve().is_file(), caption.group(1)
    assert figure_rules == 2  # task examples, every panel of Figures 2-5 (rule figure)


@pytest.mark.parametrize("figure", [2, 3, 4, 5])
def test_the_caption_describes_every_panel_of_its_figure(repo, figure):
    from instructnet.figures.panels import panels

    text = (repo / "workflow" / "report" / "figures.rst").read_text()
    # the Jinja branch rule figure renders for this figure (params.figure)
    branch = re.search(r"\{% (?:el)?if snakemake\.params\.figure == " + str(figure)
                       + r" %\}\n(.*?)\{%", text, re.S)
    assert branch, f"figures.rst has no caption for Figure {figure}"
    assert f"Figure {figure}" in branch.group(1)
    for name in panels(figure):
        if figure != 2:  # Figure 2's caption describes the panels together
            assert name in branch.group(1), f"Figure {figure}'s caption does not describe {name}"
