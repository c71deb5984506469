"""Write a tiny llama GGUF for running tests/test_llm_integration.py offline against a real server.

    python tests/tiny_gguf.py VOCAB.gguf OUT.gguf

VOCAB.gguf is a vocabulary-only file such as `vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf`
from the llama-cpp-python source package; the `gguf` package (PyPI, or llama.cpp's gguf-py)
writes the file. The model knows nothing. Its blocks are zero, so the residual stream is the token
embedding; every embedding has the same first coordinate, and only the output rows of `"` and `}`
read it. Under the server's JSON grammar, greedy decoding therefore closes every string and
object as soon as it may, and picks the first allowed token elsewhere: a short, schema-shaped,
meaningless answer. That checks the protocol (request forms, grammar, parsing) and the safety
checks around whatever a model says, not the quality of a choice.
"""

from __future__ import annotations

import sys

import gguf
import numpy as np

EMBEDDING, FEED_FORWARD, HEADS = 64, 128, 2
FAVOURED = {'"': 5.0, "}": 4.0}  # logits; every other token gets 0
TEMPLATE = "{% for m in messages %}[{{ m['role'] }}]\n{{ m['content'] }}\n{% endfor %}[assistant]\n"


def array(reader: gguf.GGUFReader, key: str) -> list:
    field = reader.fields[key]
    return [field.parts[i] for i in field.data]


def main(vocab_path: str, out_path: str) -> None:
    reader = gguf.GGUFReader(vocab_path)
    tokens = [bytes(part).decode() for part in array(reader, "tokenizer.ggml.tokens")]
    scores = [float(part[0]) for part in array(reader, "tokenizer.ggml.scores")]
    types = [int(part[0]) for part in array(reader, "tokenizer.ggml.token_type")]

    writer = gguf.GGUFWriter(out_path, "llama")
    writer.add_name("agent-sre-grammar-test")
    writer.add_context_length(2048)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(1)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(TEMPLATE)

    embedding = np.random.default_rng(0).standard_normal((len(tokens), EMBEDDING)).astype(np.float32) * 0.01
    embedding[:, 0] = 1.0
    output = np.zeros((len(tokens), EMBEDDING), dtype=np.float32)
    for token, logit in FAVOURED.items():
        output[tokens.index(token), 0] = logit
    ones = np.ones(EMBEDDING, dtype=np.float32)
    writer.add_tensor("token_embd.weight", embedding)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", ones)
    writer.add_tensor("blk.0.ffn_norm.weight", ones)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        writer.add_tensor(f"blk.0.{name}.weight", np.zeros((EMBEDDING, EMBEDDING), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", np.zeros((FEED_FORWARD, EMBEDDING), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((FEED_FORWARD, EMBEDDING), dtype=np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((EMBEDDING, FEED_FORWARD), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {out_path}: {len(tokens)} tokens")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[2].strip())
    main(sys.argv[1], sys.argv[2])
