"""The one Hydra home: the typed roots of every command's config (:mod:`.config`), their
registry (:mod:`.registry`), the command decorator with one-line errors (:mod:`.command`) and
composing a config in Python (:mod:`.compose`)."""
