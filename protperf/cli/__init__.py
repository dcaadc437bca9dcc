"""The one Hydra home: the typed roots of every command's config (:mod:`.config`), their
registry (:mod:`.registry`), the command decorator with one-line errors (:mod:`.command`),
machine checks (:mod:`.machine`), the console entry points that check a config before a
command's stack is imported (:mod:`.entries`; they name the command modules as strings) and
composing a config in Python (:mod:`.compose`)."""
