#!/usr/bin/python3
"""Reference for DataComp's caption/metadata filters, re-implemented from DataComp's published rules
(baselines/apply_filter.py) with the same libraries they use: pandas/numpy for the basic filter's text and size
rules, NLTK's WordNet for the text-based filter. The tests compare src/text/datacomp*.ts with it.

Input: JSON lines on stdin, one per sample: {"text": str, "original_width": num|null, "original_height": num|null}.
Output: JSON lines on stdout, one per sample:
  words, chars      len(text.split()), len(text)
  caption_ok        words > 2 and chars > 5
  image_ok          min(w, h) >= 200 and max(w, h) / min(w, h) <= 3.0, computed on float64 columns in which a
                    missing size is NaN (what a parquet null becomes in pandas)
  in21k             only with --wordnet/--synsets (needs python3-nltk and WordNet 3.0): some word of
                    text.split() has wordnet.synsets(word)[0].offset() in the synset list

fastText is not part of this reference (the Python package is not installed here); the tests check English
detection on clear cases and against probabilities published for lid.176.
"""

import argparse
import json
import sys

import numpy as np
import pandas as pd


def basic_masks(df):
    caption_num_words = df.text.apply(lambda x: len(x.split()))
    caption_num_chars = df.text.apply(lambda x: len(x))
    caption_mask = (caption_num_words > 2) & (caption_num_chars > 5)
    min_image_dim = np.minimum(df.original_width, df.original_height)
    max_image_dim = np.maximum(df.original_width, df.original_height)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect_ratio = max_image_dim / min_image_dim
    image_mask = (min_image_dim >= 200) & (aspect_ratio <= 3.0)
    return caption_num_words, caption_num_chars, caption_mask, image_mask


def in21k_mask(texts, wordnet_dir, synsets_file):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from build_synsets import nltk_reader

    import atexit, shutil

    wn, tmp = nltk_reader(wordnet_dir)
    atexit.register(shutil.rmtree, tmp)
    entity = set(int(x.strip()[1:]) for x in open(synsets_file) if x.strip())

    def contains(text):
        for word in text.split():
            synsets = wn.synsets(word)
            if len(synsets) == 0:
                continue
            if synsets[0].offset() in entity:
                return True
        return False

    return [contains(t) for t in texts]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wordnet", help="WordNet 3.0 dict folder (with --synsets)")
    ap.add_argument("--synsets", help="synset id list, e.g. imagenet21k_wordnet_ids.txt")
    args = ap.parse_args()
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    df = pd.DataFrame(
        {
            "text": pd.Series([r["text"] for r in rows], dtype=object),
            "original_width": pd.Series([r.get("original_width") for r in rows], dtype="float64"),
            "original_height": pd.Series([r.get("original_height") for r in rows], dtype="float64"),
        }
    )
    words, chars, caption_mask, image_mask = basic_masks(df)
    in21k = in21k_mask(df.text, args.wordnet, args.synsets) if args.synsets else None
    for i in range(len(df)):
        out = {
            "words": int(words[i]),
            "chars": int(chars[i]),
            "caption_ok": bool(caption_mask[i]),
            "image_ok": bool(image_mask[i]),
        }
        if in21k is not None:
            out["in21k"] = bool(in21k[i])
        sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
