"""The public face (``protperf/__init__.py``): lazy, complete, used, and documented by
docs/api.md, whose examples run here as doctests."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import protperf

REPO = Path(__file__).resolve().parents[1]
API_PAGE = REPO / "docs" / "api.md"
#: Examples that need a function another branch adds: skipped until it is there.
NEEDS_HUB = doctest.register_optionflag("NEEDS_HUB")
NEEDS_CONVERT = doctest.register_optionflag("NEEDS_CONVERT")
#: Files outside the commands that may still import protperf.app, and why.
APP_IMPORTS_ALLOWED = {
    "scripts/prepare_data.py": "the prepare command's script (argparse entry in app/)",
    "scripts/import_model.py": "the import command's script (argparse entry in app/)",
    "scripts/export_model.py": "the export command's script (argparse entry in app/)",
    "scripts/collect_runs.py": "the collect-runs command's script (entry in app/)",
}
#: Test files that test the commands themselves (their functions, entries, errors).
COMMAND_TESTS = ("tests/app/", "tests/cli/", "tests/scale/test_resume_signals.py",
                 "tests/runtime/test_fault_injection.py", "tests/inference/test_apps.py",
                 "tests/inference/test_export.py", "tests/model/test_checkpoint.py",
                 "tests/pretrained/test_commands.py", "tests/pretrained/test_bad_input.py",
                 "tests/checkpoint/test_command_faults.py", "tests/checkpoint/test_integrity.py",
                 "tests/pretrained/test_hub.py")


def test_import_protperf_imports_no_torch_and_is_fast():
    code = ("import sys, time\nstart = time.perf_counter()\nimport protperf\n"
            "elapsed = time.perf_counter() - start\n"
            "heavy = [m for m in ('torch', 'lightning', 'numpy', 'hydra') if m in sys.modules]\n"
            "print(f'{elapsed:.4f}', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split(maxsplit=1)
    assert out[1].strip() == "[]"
    assert float(out[0]) < 0.25, f"import protperf took {out[0]} s"


@pytest.mark.parametrize("name", sorted(protperf.PUBLIC))
def test_every_public_name_is_the_object_it_names(name):
    module_name, attribute = protperf.PUBLIC[name].split(":")
    module = importlib.import_module(module_name)
    if name == "convert" and not hasattr(module, attribute):
        pytest.skip("protperf.transfer.convert is not on this branch yet")
    assert getattr(protperf, name) is getattr(module, attribute)
    assert name in dir(protperf) and name in protperf.__all__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'protperf' has no attribute 'lod_model'"):
        protperf.lod_model  # noqa: B018


@pytest.mark.parametrize(("name", "module"), [("load_model", "protperf.pretrained.load"),
                                              ("export_model", "protperf.checkpoint.export")])
def test_the_face_points_at_the_landed_home(name, module):
    """When the loader of any source / the export module lands, the face points at it."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not on this branch yet")
    assert protperf.PUBLIC[name] == f"{module}:{name}"


def python_sources() -> dict[str, str]:
    """Each script, test and notebook code cell, by path relative to the repository."""
    import json

    found = {str(p.relative_to(REPO)): p.read_text() for folder in ("scripts", "tests")
             for p in (REPO / folder).rglob("*.py")}
    for path in (REPO / "notebooks").glob("*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        found[str(path.relative_to(REPO))] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return found


def test_scripts_tests_and_notebooks_use_the_face_not_protperf_app():
    importing = re.compile(r"^\s*(from|import)\s+protperf\.app\b", re.MULTILINE)
    wrong = sorted(path for path, text in python_sources().items()
                   if importing.search(text) and path not in APP_IMPORTS_ALLOWED
                   and not path.startswith(COMMAND_TESTS))
    assert not wrong, f"import protperf.app (use protperf.<name> or the package's module): {wrong}"


def test_the_api_page_examples_run(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    missing = 0
    if importlib.util.find_spec("protperf.pretrained.load") is None:
        missing |= NEEDS_HUB
    if not hasattr(importlib.import_module("protperf.transfer"), "convert"):
        missing |= NEEDS_CONVERT
    text = re.sub(r"^```.*$", "", API_PAGE.read_text(), flags=re.MULTILINE)  # fences end output
    test = doctest.DocTestParser().get_doctest(text, {}, API_PAGE.name, str(API_PAGE), 0)
    for example in test.examples:  # an example that needs what is missing is skipped
        if any(example.options.get(flag) for flag in (NEEDS_HUB, NEEDS_CONVERT) if flag & missing):
            example.options[doctest.SKIP] = True
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of api.md failed"
    assert result.attempted >= 20
