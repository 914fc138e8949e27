"""Encoder-decoder Transformer (T5 v1.0 and v1.1 styles by config)."""
