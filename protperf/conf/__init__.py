"""Hydra configs of the applications (package data; ``train.yaml`` is the training root).

YAML files hold only what differs from the dataclass defaults (:mod:`protperf.cli.config`,
:mod:`protperf.model.config`, :mod:`protperf.data.config`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The directory of this package's YAML files, for ``hydra.initialize_config_dir``.
CONF_DIR: Path = Path(str(files(__name__)))
