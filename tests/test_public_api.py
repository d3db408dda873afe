import subprocess
import sys

import lossdx


def test_all_is_sorted_and_complete():
    assert lossdx.__all__ == sorted(lossdx.__all__)
    for name in lossdx.__all__:
        assert hasattr(lossdx, name), name


def test_import_loads_no_heavy_dependency():
    code = ("import sys, lossdx, lossdx.cli; "
            "heavy = [m for m in ('torch', 'pandas', 'transformers', 'lightning', 'matplotlib', 'tensorboard', "
            "'tensorflow', 'plotly', 'scipy') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_code_execution_primitives_in_the_source():
    import pathlib
    import re

    src = pathlib.Path(lossdx.__file__).parent
    bad = re.compile(r"(^|[^_.\w])(exec|eval)\(|pickle\.loads?\(|yaml\.load\(|yaml\.unsafe_load|weights_only=False")
    hits = [f"{p}:{i}" for p in src.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if bad.search(line)]
    assert hits == []
