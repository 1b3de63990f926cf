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


def test_every_figure_rule_reports_its_png_with_a_caption(repo):
    figure_rules = 0
    for smk, name, body in _rules(repo):
        output = _output_block(body)
        pngs = re.findall(r'"(results/figures/[^"]+\.png)"', output)
        if not pngs:
            continue
        figure_rules += 1
        for png in pngs:
            call = re.search(r'report\(\s*"' + re.escape(png) + r'"(.*?)\)', output, re.S)
            assert call, f"{smk.name}: rule {name} does not mark {png} with report(...)"
            args = call.group(1)
            assert "category=" in args, f"rule {name}: report() without a category"
            caption = re.search(r'caption="([^"]+)"', args)
            assert caption, f"rule {name}: report() without a caption"
            assert (smk.parent / caption.group(1)).resolve().is_file(), caption.group(1)
    assert figure_rules >= 4  # task examples, Figures 2, 3, 4 at least


@pytest.mark.parametrize("caption, names", [
    ("figure3.rst", ["fig3ad_pca", "fig3e_ccgp_zero_shot", "fig3f_ccgp_layers"]),
    ("figure4.rst", ["fig4a_go_tuning", "fig4b_matching", "fig4c_dm_contrast", "fig4d_comp",
                     "supp_task_variance"]),
])
def test_captions_describe_every_panel(repo, caption, names):
    text = (repo / "workflow" / "report" / caption).read_text()
    for name in names:
        assert name in text, f"{caption} does not describe {name}"
    from instructnet import plan

    assert set(names) == set(plan.FIGURES3 if caption == "figure3.rst" else plan.FIGURES4)
