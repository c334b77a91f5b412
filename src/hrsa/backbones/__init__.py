"""Tiny offline backbones: a byte-level BPE tokenizer, a pretrained Qwen2 base, and its RLVR and SFT siblings."""
