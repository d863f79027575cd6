"""Issue 15's shape of the engine: the Engine class keeps only the observed state and the reconcile
loop (intake, executor, peer fencing and the control commands live beside it): under 250 lines, no
method over 50."""

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "hasupd" / "engine.py"


def test_the_engine_class_stays_small():
    tree = ast.parse(ENGINE.read_text())
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Engine")
    assert engine.end_lineno - engine.lineno + 1 < 250
    long = {m.name: m.end_lineno - m.lineno + 1 for m in engine.body
            if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.end_lineno - m.lineno + 1 > 50}
    assert long == {}
