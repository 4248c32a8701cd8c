"""Package data installed as `hum_search_assets`: the shipped model, the default catalogue,
the demo hums and their licences (LICENSES.md). Resolved only by device/assets.py."""
