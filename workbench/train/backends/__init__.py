"""Framework backends: each turns a model into a replica with flat parameter/gradient buffers."""
