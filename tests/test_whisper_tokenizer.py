"""ESPnet's Whisper text classes (tokenizer, token-id converter, vocabulary export) with the
current, tiktoken-based openai-whisper through the plugin's shim."""

import whisper.tokenizer
from espnet2.text.whisper_token_id_converter import OpenAIWhisperTokenIDConverter
from espnet2.text.whisper_tokenizer import OpenAIWhisperTokenizer

from espnet_ssvd.tasks import register_plugin

TEXT = "The café's 42 dogs – naïve, weren't they?"


def test_text_round_trips_through_espnet_s_whisper_tokenizer_with_whisper_s_own_ids():
    register_plugin()
    tokenizer = OpenAIWhisperTokenizer("whisper_multilingual", language="en")
    converter = OpenAIWhisperTokenIDConverter("whisper_multilingual", language="en")
    tokens = tokenizer.text2tokens(TEXT)
    assert tokens[:2] == ["The", "ĠcafÃ©"] and tokenizer.tokens2text(tokens) == TEXT
    reference = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    ids = converter.tokens2ids(tokens)
    assert ids == list(reference.sot_sequence_including_notimestamps[1:]) + reference.encode(TEXT)
    assert converter.get_num_vocabulary_size() == 51865  # Whisper's multilingual vocabulary, as before
    assert converter.ids2tokens(ids) == tokens  # the prompt's special tokens are skipped, as before
    assert converter.ids2tokens([*ids[3:], reference.eot]) == tokens


def test_espnet_exports_the_whisper_vocabulary(tmp_path):
    from espnet2.bin.whisper_export_vocabulary import main

    register_plugin()
    out = tmp_path / "tokens.txt"
    main(["--whisper_model", "whisper_multilingual", "--output", str(out)])
    tokens = out.read_text().splitlines()
    assert len(tokens) == 51865 and tokens[50257] == "<|endoftext|>" and tokens[50363] == "<|notimestamps|>"
    reference = whisper.tokenizer.get_tokenizer(True)
    pieces = OpenAIWhisperTokenizer("whisper_multilingual").text2tokens(" naïve")
    assert [tokens[i] for i in reference.encode(" naïve")] == [p.replace("Ġ", " ") for p in pieces]  # ESPnet's export
