"""Build the CLIP BPE tokenizer files (vocab.json, merges.txt) offline.

SD 1.x/2.x use OpenAI's CLIP tokenizer: 49,408 tokens = 256 byte symbols, the same with the
end-of-word mark `</w>`, 48,894 merges, and `<|startoftext|>` / `<|endoftext|>`. The merges
ship as `bpe_simple_vocab_16e6.txt.gz` inside the `open_clip_torch` package; we rebuild the
Hugging Face files from it so that nothing is fetched from a hub. The result is shipped in
`erasekit/assets/clip_tokenizer`, so this runs only when rebuilding assets.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # the merges CLIP keeps (open_clip SimpleTokenizer)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def find_bpe_file() -> Path:
    """The BPE merges file inside an installed `open_clip_torch` (install it with --no-deps)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the CLIP BPE file ships in open_clip_torch: pip install --no-deps open_clip_torch "
            "(its torchvision requirement is not needed for the tokenizer)"
        )
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def build_clip_tokenizer_files(bpe_path: Path, out_dir: Path) -> None:
    """Write vocab.json, merges.txt and the tokenizer configs that CLIPTokenizer loads."""
    with gzip.open(bpe_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **special}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
