"""Decoder-only Transformer language models: GPT-2 and Llama styles by config."""
