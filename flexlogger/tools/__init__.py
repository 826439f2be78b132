"""Tools around a run: the CLI, the Visdom server and its assets, replay, compare, follow, ingest, demo."""
