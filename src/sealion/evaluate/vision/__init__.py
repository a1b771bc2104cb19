"""SEA-HELM's vision group: CVQA, MaRVL, WorldCuisines (task1, task2) and xm3600 captioning (RefCLIPScore).

`rows.py` reads the hub datasets' layouts (from `--data` or the hub) into items carrying image bytes, `images.py`
checks and encodes them, `kind.py` holds the kinds (`vision-choice`, `vision-caption`), `specs/` the task specs
(sealion's own prompts; `--seahelm PATH` swaps in the tree's). RefCLIPScore itself is
`sealion.evaluate.metrics.refclipscore`.
"""

from . import kind  # noqa: F401  (registers the kinds)
