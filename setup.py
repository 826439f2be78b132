"""flexlogger: declarative torchnet meters and Visdom plots for PyTorch training loops."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "flexlogger" / "version.py").read_text())
PRESETS = sorted(str(p.relative_to(HERE)) for p in (HERE / "presets").glob("*.yaml"))

setup(
    name="flexlogger",
    version=VERSION.group(1) if VERSION else "0",
    description="Declarative torchnet meters and Visdom plots for PyTorch training loops",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # presets/ lives at the top level of the repository (the YAML files users read and copy) and is installed as
    # flexlogger.builtin_presets, the package flexlogger.config.presets reads the built-in presets from.
    packages=find_packages(include=["flexlogger", "flexlogger.*"]) + ["flexlogger.builtin_presets"],
    package_dir={"flexlogger.builtin_presets": "presets"},
    package_data={"flexlogger.builtin_presets": ["*.yaml"]},
    install_requires=[
        "torch>=2.0",
        "numpy>=1.23",
        "visdom>=0.2.4,<0.4",  # both tested: 0.2.4 here (CI), 0.3 with `make test-visdom03`
        "torchnet>=0.0.4",
        "tabulate>=0.9",
        "pyyaml>=6.0",
        "tornado<6.6",
        "markdown-it-py>=2.2",  # log_markdown(): CommonMark with raw HTML off
        "pillow>=9.2",  # log_image(): PNG files and boxes drawn on images
        "tqdm>=4.60",  # progress()
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.6", "mypy>=1.10", "types-PyYAML", "types-tabulate",
                 "scikit-learn>=1.3", "nbclient>=0.10", "ipykernel", "nbformat", "tqdm",
                 "playwright>=1.40",
                 # bench/ runs in the suite (tests/test_bench.py): bench_record and bench_log compare with TensorBoard,
                 # bench_log and bench_integrations with ignite
                 "tensorboard>=2.10", "pytorch-ignite>=0.4.11"],
        "demo": ["scikit-learn>=1.3"],
        "bench": ["tensorboard", "pytorch-ignite", "scikit-learn>=1.3"],
        "tensorboard": ["tensorboard>=2.10"],  # flexlogger import of event files
        "torchmetrics": ["torchmetrics>=1.3"],
        "lightning": ["lightning>=2.0"],
        "transformers": ["transformers>=4.46", "accelerate>=1.1"],
        "ignite": ["pytorch-ignite>=0.4.11"],
        "all": ["torchmetrics>=1.3", "lightning>=2.0", "transformers>=4.46", "accelerate>=1.1",
                "pytorch-ignite>=0.4.11"],
    },
    entry_points={"console_scripts": ["flexlogger=flexlogger.tools.cli:main"]},
)
