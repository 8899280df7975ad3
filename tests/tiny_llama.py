"""A tiny, randomly initialised llama-architecture model written as a GGUF that both transformers and llama.cpp
load: for tests that need real weights (adapter training and conversion) without the cost of a real model.

Its tokenizer is a byte-level BPE with one merge (a token per byte, plus ChatML's special tokens) and
SmolLM2's chat template, so it loads in a moment; the weights are a seeded ``LlamaForCausalLM`` with a few
layers and tiny dimensions, its Q/K rows permuted as llama.cpp's converter permutes them (transformers
undoes that when it loads a GGUF).
"""

from __future__ import annotations

from pathlib import Path

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 64, 4, 2, 128, 2


SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                 "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                 "{% endif %}")


def byte_tokens() -> list[str]:
    """GPT-2's byte-to-character alphabet (what byte-level BPE vocabularies are written in)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tiny_llama(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (weights from ``seed``) and return it."""
    import gguf
    import torch
    from seasoned.memory.lora_gguf import permute_rows
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens = SPECIAL + byte_tokens() + ["Ġt"]
    vocab = len(tokens)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=512,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_context_length(512)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIAL) + [gguf.TokenType.NORMAL] * (vocab - len(SPECIAL)))
    writer.add_token_merges(["Ġ t"])  # one merge (its token is the last): converters want a merge list
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for block in range(LAYERS):
        for hf, name in names.items():
            weight = state[f"model.layers.{block}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                weight = permute_rows(weight, HEADS)
            elif hf == "self_attn.k_proj":
                weight = permute_rows(weight, KV_HEADS)
            writer.add_tensor(f"blk.{block}.{name}.weight", weight.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
