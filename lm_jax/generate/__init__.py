"""Text generation: samplers, the decode loop over a family's `Decoding`, run loading."""
