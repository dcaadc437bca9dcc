"""Scale-out helpers: DDP batch records, sweep result collection, wandb figure logging."""
