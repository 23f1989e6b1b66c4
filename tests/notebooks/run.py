#!/usr/bin/env python3
"""Executes every notebook under notebooks/ headless (nbclient, the python3 kernel) so they
never rot. Environment (set by crates/cli/tests/notebooks.rs): HARBINGER_ROOT,
HARBINGER_DATASET, HARBINGER_REGISTRY, HARBINGER_MODEL_NAME, HARBINGER_REPLAY_OUT.
Executed copies go to the directory given as the first argument. Exits non-zero naming
the notebook and the cell that failed."""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

root = Path(__file__).resolve().parents[2]
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/harbinger-notebooks")
out.mkdir(parents=True, exist_ok=True)
failed = 0
for path in sorted((root / "notebooks").glob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(root / "notebooks")}})
    try:
        client.execute()
        images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        if images == 0:
            failed += 1
            print(f"FAIL {path.name}: ran, but drew no figure")
        else:
            print(f"ok   {path.name}: {len(nb.cells)} cells, {images} figures")
    except CellExecutionError as e:
        failed += 1
        print(f"FAIL {path.name}: {str(e).splitlines()[-1] if str(e) else e}")
        print(str(e)[-3000:], file=sys.stderr)
    nbformat.write(nb, out / path.name)
sys.exit(1 if failed else 0)
