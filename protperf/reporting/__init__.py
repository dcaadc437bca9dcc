"""Reporting on runs: a sweep's runs as tables (:mod:`.runs`) and figures (:mod:`.run_plots`),
figures logged to wandb (:mod:`.wandb_figures`), result tables as CSV + markdown
(:mod:`.tables`) and the unigram baseline to beat (:mod:`.baseline`)."""
