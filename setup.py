import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The one version number lives in ncl_plugin/__init__.py.
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "ncl_plugin" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="ncl-imdlbenco",
    version=VERSION,
    description="NCL (ICCV 2023) as a trainable IMDL-BenCo plugin: model, tri-class patch sampler, dual losses",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    author="The NCL plugin for IMDL-BenCo contributors",
    keywords="image manipulation localization, forensics, contrastive learning, IMDL-BenCo",
    project_urls={
        "NCL paper (ICCV 2023)": "https://arxiv.org/abs/2309.14900",
        "IMDL-BenCo": "https://github.com/scu-zjz/IMDLBenCo",
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        *(f"Programming Language :: Python :: 3.{minor}" for minor in range(9, 14)),
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    python_requires=">=3.9",
    # registry/ lives at the top of the repository but is installed inside the
    # package, so no top-level module called `registry` lands in site-packages.
    packages=[*find_packages(include=["ncl_plugin", "ncl_plugin.*"]), "ncl_plugin.registry", "ncl_plugin.configs"],
    package_dir={"ncl_plugin": "ncl_plugin", "ncl_plugin.registry": "registry", "ncl_plugin.configs": "configs"},
    package_data={
        "ncl_plugin.configs": ["*.yaml", "forensichub/*.yaml", "protocols/*.yaml", "protocols/*.json", "splits/*/*.txt"]
    },
    # `benco` extends IMDL-BenCo's command of the same name, which reinstalling imdlbenco puts back;
    # `ncl-benco` is the same command under a name nothing else installs.
    entry_points={
        "console_scripts": ["benco = ncl_plugin.cli:console_main", "ncl-benco = ncl_plugin.cli:console_main"]
    },
    install_requires=[
        # Unpinned on purpose: a CPU-only torch wheel has no matching torchvision,
        # and IMDL-BenCo imports torchvision.
        "torch>=2.1",
        "torchvision",
        # IMDL-BenCo's published numbers were computed with 0.1.45, which pins numpy<2: numpy 1.x has no
        # wheel for Python 3.13, where pip takes IMDL-BenCo's numpy-2 line (the same IMDLBenCo module).
        # engine/imdlbenco_line.py tells the two apart and records which one computed every figure.
        'imdlbenco==0.1.45; python_version < "3.13"',
        'imdlbenco13>=0.2.9,<0.3; python_version >= "3.13"',
        "timm",
        "numpy",
        "scikit-learn",
        "pyyaml",
        "requests",  # IMDL-BenCo's `benco` imports it without declaring it
        # Photographs of the embedded synthetic dataset ship inside these three.
        "scikit-image",
        "matplotlib",
        "opencv-python-headless",
        "rich",
        "tensorboard",
        "fvcore",
        "openpyxl",  # benco data reads the CASIA ground truth's rename spreadsheets
    ],
    extras_require={
        # mkdocs 2 drops the plugins and themes of 1.x: the site is built with 1.x.
        "test": [
            "pytest",
            "hypothesis",
            "ruff",
            "mkdocs>=1.6,<2",
            "mkdocs-material",
            "mkdocs-gen-files",
            # ForensicHub's registries, for tests/test_forensichub.py. Its release requires `imdlbenco`, which on
            # Python 3.13 would compile numpy 1 beside the numpy-2 line: left out there.
            'forensichub==0.0.1; python_version < "3.13"',
        ],
    },
)
