"""softpl.bin.asr_inference: ESPnet's own inference entry point, with its --help working under Python 3.12."""
import subprocess
import sys

from softpl.bin import asr_inference


def test_help_formats_every_option_including_the_upstream_bare_percent():
    text = asr_inference.get_parser().format_help()
    assert "--ctc_window_margin" in text and "--asr_model_file" in text


def test_help_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "softpl.bin.asr_inference", "--help"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--ctc_window_margin" in proc.stdout
