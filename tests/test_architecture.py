"""The package's seams: modules use each other's public names only, and the rule files
stay declarative (what runs is decided by instructnet.plan, tested in test_plan.py)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _private_imports(path: Path, root: Path = REPO) -> list[str]:
    """``from X import _name`` in one file, except a package's own private submodule
    (``from . import _fused``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        own_submodule = node.level > 0 and node.module is None
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and not own_submodule:
                found.append(f"{path.relative_to(root)}:{node.lineno} {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names():
    files = sorted((REPO / "instructnet").rglob("*.py")) + sorted((REPO / "scripts").glob("*.py"))
    assert len(files) > 50
    found = [hit for f in files for hit in _private_imports(f)]
    assert not found, found


def test_the_check_finds_a_private_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from .training.packed import PackedTrainer, _private\nfrom . import _ok\n")
    assert _private_imports(bad, tmp_path) == ["probe.py:1 _private"]


def test_rule_files_hold_no_python_functions_or_loops():
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        for number, line in enumerate(smk.read_text().splitlines(), 1):
            code = line.split("#")[0]
            assert not code.lstrip().startswith(("def ", "for ", "while ", "class ")), \
                f"{smk.name}:{number}: {line.strip()} (planning belongs in instructnet.plan)"
