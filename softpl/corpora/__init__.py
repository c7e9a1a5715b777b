"""Corpus-specific code: readers and generators of one corpus each, used by the stage 1 of its recipe.

* ``synth``: the synthetic English corpus of ``egs/synth_en`` (espeak-ng / flite speech with noise);
* ``fortunes``: its sentences, read from Debian's fortune files;
* ``librispeech``: the LibriSpeech and Libri-light layouts of ``egs/librispeech_100`` and ``egs/librilight_10h``.

Generic data-dir code (Kaldi tables, validation, formatting, the manifest importer, transcript normalization)
lives in ``softpl.data``; a corpus module builds on it, never the other way round.
"""
