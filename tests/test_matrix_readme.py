"""The README's failure matrix is the table the last bench/matrix.py run wrote."""

from __future__ import annotations

import json

from bench.matrix import GUARDS, REPO, RESULTS, readme_block, readme_table


def test_readme_matrix_is_the_last_generated_one():
    data = json.loads((RESULTS / "matrix.json").read_text())
    shown = readme_table((REPO / "README.md").read_text())
    assert shown is not None, "README.md has no failure-matrix markers"
    assert shown == readme_block(data), "README's failure matrix differs from bench/results/matrix.json: " \
                                        "run `make test-partitions`"


def test_the_matrix_covers_every_guard_and_fault():
    from bench.matrix import FAULTS
    cells = json.loads((RESULTS / "matrix.json").read_text())["cells"]
    assert {(c["guard"], c["fault"]) for c in cells} == {(g, f) for g in GUARDS for f in FAULTS}
