"""Using a trained model: embeddings, variant-effect scores and generation."""
