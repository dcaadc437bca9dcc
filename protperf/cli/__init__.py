"""The one Hydra home: the typed roots of every command's config (:mod:`.config`), their
registry (:mod:`.registry`), the command decorator with one-line errors (:mod:`.command`), the
checks of the machine against a config (:mod:`.machine`: GPU, fla, SLURM) and composing a
config in Python (:mod:`.compose`). Nothing here imports Lightning or the model."""
