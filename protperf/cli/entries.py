"""The console entry points of the Hydra commands (``protperf-<name>``, ``scripts/<name>.py``).

Each one composes and checks its config (and the machine) before importing its command module
(``protperf.app.<name>``, with Lightning and the model), so a config error or ``--help``
answers at once (:func:`protperf.cli.command.entry_point`).
"""

from __future__ import annotations

from protperf.cli.command import entry_point

train = entry_point("train", "protperf.app.train")
evaluate = entry_point("evaluate", "protperf.app.evaluate")
analyze = entry_point("analyze", "protperf.app.analyze")
embed = entry_point("embed", "protperf.app.embed")
score = entry_point("score", "protperf.app.score")
generate = entry_point("generate", "protperf.app.generate")
convert = entry_point("convert", "protperf.app.convert")
