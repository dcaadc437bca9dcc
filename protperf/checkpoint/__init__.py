"""How a model lives on disk: one home for checkpoints and export directories.

- :mod:`.atomic`: files that appear complete or not at all (every file protperf writes);
- :mod:`.load`: :func:`~protperf.checkpoint.load.load_model` (no Lightning) and the reading
  of ``.ckpt`` files and export directories; :mod:`.module`: the LightningModule of a saved
  model, for training and evaluation;
- :mod:`.writer`: an imported model written as an ordinary checkpoint;
  :mod:`.lightning_io`: Lightning's checkpoint plugin writing atomically;
- :mod:`.export_dir`: protperf's export directory; :mod:`.hf_formats`: a transformers
  directory (``EsmForMaskedLM`` by :mod:`.hf_export`, ``BertForMaskedLM`` by
  :mod:`.hf_bert_export`; a Performer for :mod:`protperf.hf`'s attention);
- :mod:`.overrides`: the model settings that may differ from a checkpoint's (whether
  saved settings fit a model is :mod:`protperf.model.compat`, used by the LightningModule).

Importing this package imports nothing heavy; import the submodules.
"""
