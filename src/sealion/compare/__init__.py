"""`sealion compare`: paired significance between evaluation runs at every SEA-HELM level, and a leaderboard of
runs with tie groups. `stats` (pure statistics), `load` (run directories), `board`, `report` (terminal, json,
html), `cli`."""
