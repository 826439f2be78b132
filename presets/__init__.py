"""Built-in logger presets (``*.yaml``), installed as ``flexlogger.builtin_presets``; see ``flexlogger/presets.py``.

This folder holds data only. It is a package so that both editable and regular installs find it with
``importlib.resources.files('flexlogger.builtin_presets')``.
"""
