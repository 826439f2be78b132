"""Where logged points go: ``visdom`` (background sender), ``record`` (the run record on disk)."""
