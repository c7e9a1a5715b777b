"""Stock ESPnet inference (``espnet2.bin.asr_inference``) for models trained with softpl.

Importing :mod:`softpl.models` first registers softpl's model classes in ESPnet's ``ClassChoices``, so
``config.yaml`` files that name them load; everything else (options, beam search, output layout) is
ESPnet's own. Note that ``--ctc_weight 1.0 --beam_size 1`` is a CTC prefix search, not frame-wise argmax:
use ``softpl.bin.decode`` for batched greedy CTC decoding.

Known upstream bug worked around here: ESPnet 202611's parser has a bare ``%`` in a help string
(``--ctc_window_margin``), which Python 3.12's argparse rejects when it formats ``--help``; the help strings
that do not format are escaped before parsing.
"""
import re

import espnet2.bin.asr_inference as espnet_inference

import softpl.models  # noqa: F401  (registers softpl's model classes in ESPnet)

_espnet_get_parser = espnet_inference.get_parser
_BARE_PERCENT = re.compile(r"%(?!\(\w+\)[a-z]|%)")  # a % that starts no "%(name)s" and is no "%%"


def get_parser():
    """ESPnet's parser, with every help string that argparse cannot format escaped."""
    parser = _espnet_get_parser()
    for action in parser._actions:
        if not action.help:
            continue
        try:
            action.help % {**vars(action), "prog": parser.prog}
        except (ValueError, TypeError, KeyError):
            action.help = _BARE_PERCENT.sub("%%", action.help)
    return parser


espnet_inference.get_parser = get_parser  # ESPnet's main() builds its parser through this module attribute


def main(cmd=None):
    espnet_inference.main(cmd)


if __name__ == "__main__":
    main()
