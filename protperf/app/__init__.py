"""Thin applications over the library: train, evaluate, analyze, embed, score, generate."""
