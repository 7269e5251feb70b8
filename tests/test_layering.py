"""Layers: only app.py, screens/ and widgets/ import textual; the UI starts without cloud libraries."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "rhaii_tui"
UI_DIRS = ("screens", "widgets")
CLOUD_LIBS = ("kubernetes", "google.cloud", "google.api_core", "aiohttp", "httpx", "grpc")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (anywhere in it, not only at the top)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def is_ui_module(path: Path) -> bool:
    rel = path.relative_to(PKG)
    return rel.parts == ("app.py",) or rel.parts[0] in UI_DIRS


def test_only_the_ui_layer_imports_textual():
    offenders = []
    checked = 0
    for path in sorted(PKG.rglob("*.py")):
        checked += 1
        if is_ui_module(path):
            continue
        textual = sorted(m for m in imported_modules(path) if m == "textual" or m.startswith("textual."))
        if textual:
            offenders.append(f"{path.relative_to(PKG.parent)}: {', '.join(textual)}")
    assert checked > 10  # the walk really saw the package
    assert not offenders, "textual imported outside app.py, screens/, widgets/:\n" + "\n".join(offenders)


def test_the_checker_sees_textual_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from textual.widgets import Label\nimport textual\n")
    assert {"textual", "textual.widgets"} <= imported_modules(sample)


def test_the_wizard_starts_without_cloud_client_libraries():
    """Importing the app and building its first page must not pull kubernetes/google.cloud/httpx."""
    code = (
        "import sys, json\n"
        "import rhaii_tui.app\n"
        "from rhaii_tui.screens import step_screen_for\n"
        "[step_screen_for(n) for n in (0, 12)]\n"
        f"bad = sorted(m for m in sys.modules if any(m == l or m.startswith(l + '.') for l in {CLOUD_LIBS!r}))\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=PKG.parent)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_pages_and_widgets_never_import_the_app():
    """app.py imports the pages; the pages know the app only through screens/protocol.Wizard."""
    offenders = []
    for d in UI_DIRS:
        for path in sorted((PKG / d).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module == "app":
                    offenders.append(str(path.relative_to(PKG.parent)))
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "rhaii_tui.app":
                    offenders.append(str(path.relative_to(PKG.parent)))
    assert not offenders, offenders


def test_the_app_is_the_wizard_its_pages_expect():
    from rhaii_tui.app import RhaiiApp
    from rhaii_tui.config import DeployConfig
    from rhaii_tui.screens.protocol import Wizard

    assert isinstance(RhaiiApp(DeployConfig(project="p")), Wizard)
