"""The encoder (BERT) family: bidirectional Transformer, MLM and NSP heads."""
