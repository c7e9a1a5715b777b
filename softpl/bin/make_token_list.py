"""Stage 4: build the token list with the sentencepiece Python API from labeled transcripts only.

Writes ``<output_dir>/bpe.model`` (a sentencepiece model, used by ESPnet as ``--token_type bpe --bpemodel``)
and ``<output_dir>/tokens.txt`` in ESPnet's order: ``<blank>`` (id 0, the CTC blank), ``<unk>``, the pieces,
``<sos/eos>`` last. ``--token_type char`` trains a character model (one piece per letter, ``▁`` for the
word boundary); ``bpe`` a BPE model of ``--nbpe`` pieces.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import sentencepiece as spm

from softpl.data.datadir import read_table

SPECIAL_FIRST = ("<blank>", "<unk>")
SPECIAL_LAST = ("<sos/eos>",)


def train_token_model(text_file: Path, out_dir: Path, token_type: str, nbpe: int) -> list[str]:
    """Train the sentencepiece model on the transcripts of ``text_file``; return the ESPnet token list."""
    transcripts = [value for _, _, value in read_table(text_file)]
    if not transcripts:
        raise ValueError(f"{text_file}: no transcripts; stage 4 needs the labeled training set's text")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write("\n".join(transcripts) + "\n")
        corpus = f.name
    try:
        spm.SentencePieceTrainer.train(
            input=corpus,
            model_prefix=str(out_dir / "bpe"),
            model_type=token_type,
            # A char model has exactly as many pieces as there are characters: let spm choose.
            vocab_size=nbpe if token_type == "bpe" else 1000,
            hard_vocab_limit=token_type == "bpe",
            character_coverage=1.0,
            input_sentence_size=10_000_000,
            minloglevel=2,
        )
    finally:
        os.unlink(corpus)
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "bpe.model"))
    pieces = [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_unknown(i) or sp.is_control(i))
    ]
    tokens = [*SPECIAL_FIRST, *pieces, *SPECIAL_LAST]
    (out_dir / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True, help="Kaldi text file of the labeled training set")
    parser.add_argument("--token_type", choices=("char", "bpe"), default="char")
    parser.add_argument("--nbpe", type=int, default=100, help="vocabulary size for --token_type bpe")
    parser.add_argument("--output_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tokens = train_token_model(args.text, args.output_dir, args.token_type, args.nbpe)
    logging.info("%s: %d tokens (%s) from %s", args.output_dir / "tokens.txt", len(tokens), args.token_type, args.text)


if __name__ == "__main__":
    main()
