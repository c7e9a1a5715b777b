"""softpl: continuous (soft) pseudo-labeling for ASR as an ESPnet2 plugin."""
from setuptools import find_packages, setup

# A tested, pinned set: ESPnet 202611 needs Python >= 3.12, torch >= 2.11, < 2.15 (not 2.12.x)
# and torchaudio 2.11 (espnet2.tasks.asr imports torchaudio at module level).
install_requires = [
    "espnet==202611",
    "torch==2.14.1",
    "torchaudio==2.11.0",
    "sentencepiece==0.2.1",
    "kaldiio>=2.18.0",
    "soundfile>=0.12.1",
    "pyyaml>=6.0",
    "numpy>=2.0",
    "scipy>=1.11",
    "tqdm>=4.66",
    "matplotlib>=3.8",
    "tensorboard>=2.15",
    "editdistance>=0.8",  # ESPnet computes validation CER with it but does not declare it
    "flashlight-text==0.0.7",  # lexicon-constrained CTC beam search with a KenLM n-gram (--pl_transcript lexicon_beam)
]

setup(
    name="softpl",
    version="0.1.0",
    description="Continuous hard/soft pseudo-labeling (slimIPL) for ASR on top of ESPnet2",
    packages=find_packages(include=["softpl", "softpl.*"]),
    python_requires=">=3.12",
    install_requires=install_requires,
    # ruff: make lint (ruff.toml); pytest-xdist: make test runs the suite in 2 processes
    extras_require={"test": ["pytest>=8.0", "pytest-xdist==3.8.0", "ruff==0.17.6"]},
)
