"""The encoder's input rules for text that is not valid Unicode, invisible text and unknown options."""

from __future__ import annotations

import json

import pytest

from trainer.encoder import EncodeOptions, EncodingInputError, SpladeEncoder
from trainer.errors import ConfigError


def test_a_lone_surrogate_is_an_input_error_naming_its_position(encoder: SpladeEncoder) -> None:
    """`"bad \\ud800 x"` (valid JSON) is an EncodingInputError naming the input and the character position,
    raised before the tokenizer sees it."""
    text = json.loads('"bad \\ud800 x"')
    with pytest.raises(EncodingInputError, match=r"input #2: .*lone surrogate U\+D800 at character 4") as info:
        encoder.encode_documents(["fine", "also fine", text])
    assert info.value.position == 2
    with pytest.raises(EncodingInputError, match="input #0"):
        encoder.encode_queries([json.loads('"\\udfff"')])


def test_a_valid_surrogate_pair_is_encoded(encoder: SpladeEncoder) -> None:
    emoji = json.loads('"rocket \\ud83d\\ude80 launch"')  # json joins the pair into one character
    assert encoder.encode_documents([emoji])[0].nnz > 0


@pytest.mark.parametrize(
    "text",
    ["\u200b\u200c\u200d", "\ufeff", "\x00\x07\x1b", " \u00ad\u2060 \t", "\u2028\u3000", "\ue000"],
    ids=["zero-width", "bom", "c0-controls", "soft-hyphen-word-joiner", "unicode-spaces", "private-use"],
)
def test_invisible_text_follows_the_empty_text_rule(encoder: SpladeEncoder, text: str) -> None:
    """Text of only control, zero-width or other invisible characters is empty text: an empty vector (or an
    error with `empty_text="error"`), not the generic [CLS][SEP] vector."""
    vectors = encoder.encode_documents(["real text", text])
    assert vectors[0].nnz > 0 and vectors[1].nnz == 0
    assert encoder.stats.empty == [1]
    with pytest.raises(EncodingInputError, match="input #1: text is empty"):
        encoder.encode_documents(["real text", text], empty_text="error")


def test_visible_text_with_zero_width_characters_is_encoded(encoder: SpladeEncoder) -> None:
    plain, marked = encoder.encode_documents(["cornelius", "\u200bcornelius\u200d"])
    assert marked.nnz > 0 and marked.indices.tolist() == plain.indices.tolist()


def test_an_unknown_encoder_option_is_an_error(encoder: SpladeEncoder) -> None:
    """An unknown option such as `bogus=1` is a ConfigError naming it, not silently ignored."""
    with pytest.raises(ConfigError, match="unknown encoder option 'bogus'"):
        encoder.encode_documents(["x"], bogus=1)
    with pytest.raises(ConfigError, match="unknown encoder option 'bogus'"):
        list(encoder.iter_encode(["x"], bogus=1))
    with pytest.raises(ValueError, match="bogus"):
        EncodeOptions(bogus=1)  # type: ignore[call-arg]  # the unknown option is the point


def test_an_invalid_option_value_is_a_config_error_naming_it(encoder: SpladeEncoder) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        encoder.encode_documents(["x"], batch_size=0)
    with pytest.raises(ConfigError, match="empty_text"):
        encoder.encode_documents(["x"], empty_text="ignore")
