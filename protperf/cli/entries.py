"""The console entry points of every command (``protperf-<name>``, ``scripts/<name>.py``).

Every command reports errors through :mod:`protperf.cli.runner`: a user error is one line
``error: ...`` with exit status 2, a bug a traceback with status 1, Ctrl-C status 130
(docs/errors.md).

- Hydra commands (:func:`protperf.cli.command.entry_point`) compose and check their config
  (and the machine) before importing their module ``protperf.app.<name>`` (Lightning, the
  model), so a config error or ``--help`` answers at once. A new Hydra command: a root YAML
  ``protperf/conf/<name>.yaml`` whose defaults start with ``<name>_schema``, its typed root in
  :data:`protperf.cli.registry.SCHEMAS`, a module whose ``main`` is decorated with
  ``@command("<name>")`` (its task takes the validated config), and one line here.
- argparse commands (:func:`protperf.cli.runner.argparse_entry`): the module defines
  ``parse_args(argv)`` and ``run(args)`` (and may define ``INTERRUPTED``), and keeps its
  top-level imports light, importing torch inside ``run`` after its cheap checks.
"""

from __future__ import annotations

from protperf.cli.command import entry_point
from protperf.cli.runner import argparse_entry

train = entry_point("train", "protperf.app.train")
evaluate = entry_point("evaluate", "protperf.app.evaluate")
analyze = entry_point("analyze", "protperf.app.analyze")
embed = entry_point("embed", "protperf.app.embed")
score = entry_point("score", "protperf.app.score")
generate = entry_point("generate", "protperf.app.generate")
convert = entry_point("convert", "protperf.app.convert")
prepare = argparse_entry("protperf.app.prepare")
import_model = argparse_entry("protperf.app.import_model")
export = argparse_entry("protperf.app.export_model")
collect_runs = argparse_entry("protperf.app.collect_runs")
