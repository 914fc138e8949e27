"""Gated convolutional language model (Dauphin et al. 2017): causal convolutions with GLU."""
