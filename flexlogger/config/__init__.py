"""Configuration: the option table, plot and meter specs, config files, presets, the registry."""
