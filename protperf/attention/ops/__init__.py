"""Attention math as pure functions and autograd ops, apart from the layers.

feature_maps (random projections, stabilizers, FAVOR+ softmax and ReLU features: the one
softmax-or-ReLU branch) with its hand-written backwards in feature_autograd; favor_linear and
favor_chunked (bidirectional / causal FAVOR+ from raw heads, features recomputed in backward:
the CPU kernels), linear (bidirectional linear attention of kept features, per segment too),
causal_scan (loop-free causal kernel), causal_fla (fla's chunk_simple_gla adapter), recurrent
(one-token decoding: recurrent FAVOR+ state, exact KV cache), exact (SDPA), segments
(packed-window bookkeeping).
"""
