from setuptools import find_packages, setup

setup(
    name="espnet_ssvd",
    version="0.1.0",
    description="SSVD / SSVD-O adapters and PEFT baselines for ESPnet ASR domain adaptation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["espnet_ssvd", "espnet_ssvd.*"]),
    python_requires=">=3.12",  # espnet 202611 requires it
    install_requires=[
        # Pinned: the plugin hooks into ESPnet internals (AbsTask.main_worker's order,
        # create_adapter_fn_table, build_model_from_file) that change between releases.
        "espnet==202611",
        # The range espnet 202611 accepts; 2.12.x is excluded by espnet itself.
        "torch>=2.13,<2.15",
        # Minor-pinned: we read PEFT's type/prefix tables, whose contents move between minors.
        "peft>=0.21,<0.22",
        "safetensors>=0.4",
        "sentencepiece>=0.2",
        "espnet_model_zoo>=0.1.11",
        # Imported by espnet's trainer without being declared by espnet 202611: without
        # editdistance validation fails, without tensorboard/matplotlib an epoch is lost.
        "editdistance",
        # espnet's trainer refuses adapter "lora" without loralib installed (a leftover check
        # for its own LoRA); our lora is PEFT's, but the check still runs.
        "loralib",
        "tensorboard",
        "matplotlib",
        "jiwer>=3",
        "tqdm",
        # Whisper models (espnet_ssvd.whisper): the model code and its tokenizer assets.
        "openai-whisper>=20250625",
        # ESPnet's `frontend: s3prl` and the plugin's `s3prl_layers` (speaker verification on s3prl
        # upstreams); minor-pinned: the plugin routes the attention of its WavLM / fairseq code
        # (spk/s3prl_attention.py) and works around its imports of removed torchaudio APIs.
        "s3prl>=0.4.18,<0.5",
        # The spoof-detection baseline (logistic regression on log-mel statistics, spk_recipe/baseline.py).
        "scikit-learn",
        "torchaudio",
        # The job engine of the recipes (local processes or Slurm).
        "submitit>=1.5",
        "pyyaml",
    ],
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3"]},
    entry_points={"console_scripts": ["espnet-ssvd=espnet_ssvd.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
