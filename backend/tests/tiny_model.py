"""Build a tiny random causal LM and its tokenizer locally (no hub download).

``make_tiny_model(dir)`` writes a 2-layer GPT-2 (32-wide) and a word-level
tokenizer trained on ``TEXTS`` into ``dir``, loadable with
``AutoModelForCausalLM.from_pretrained(dir)`` / ``AutoTokenizer.from_pretrained(dir)``.
Needs torch, transformers and tokenizers.
"""

TEXTS = [
    "the engine fine tunes small models on your own machine",
    "lora adapters are small and quick to train",
    "peft studio ships one bundle per accelerator",
    "the bootstrapper picks the right engine for this computer",
]


def make_tiny_model(path, seed=0):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<eos>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(str(path))

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=fast.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id,
                        pad_token_id=fast.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(str(path))
    return path
