"""A tiny Gemma 3 of the real architecture, built here, for tests of the model path."""

import pytest

CORPUS = [
    "I'm above the Mediterranean Sea, and in 1 minute I'll be above North Africa.",
    "Facts: I'm above: Chad, Africa next I'll be above: the Middle East next in: 12 minutes",
    "Question: Where are you? In 20 minutes I'll be above the Indian Ocean. altitude: 505 km up",
    "You are the satellite. Answer in one or two sentences, in the first person, using only the facts.",
]


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    """A randomly initialised Gemma3ForCausalLM of the real architecture (2 layers, 32 wide) with a
    byte-level BPE tokenizer trained here, saved as a transformers model directory."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        CORPUS * 4,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = transformers.Gemma3TextConfig(
        vocab_size=tk.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=4096,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.Gemma3ForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-gemma")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
