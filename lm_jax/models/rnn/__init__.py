"""Recurrent language models: vanilla (Elman) RNN, LSTM and GRU cells under nn.scan."""
