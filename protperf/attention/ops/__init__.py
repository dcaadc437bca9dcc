"""Attention math as pure functions and autograd ops, apart from the layers.

features / fused_features (random projections, feature maps), feature_maps (FAVOR+ softmax
and ReLU features from raw heads: the one softmax-or-ReLU branch), linear (bidirectional
linear attention, per segment too), causal_loop (CPU float32 causal kernel), causal_scan
(loop-free causal kernel), causal_fla (fla's chunk_simple_gla adapter), recurrent (one-token
decoding: recurrent FAVOR+ state, exact KV cache), exact (SDPA), segments (packed-window
bookkeeping).
"""
