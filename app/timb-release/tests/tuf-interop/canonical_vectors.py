"""Writes the canonical JSON vectors the Rust tests compare against (tests/data/).

Each vector is a JSON text and what securesystemslib's encode_canonical makes of it
(null when it refuses). Run: python canonical_vectors.py > ../data/tuf-canonical-vectors.json
"""
import json
import sys

from securesystemslib.formats import encode_canonical

INPUTS = [
    '{}',
    '[]',
    '{"b": 1, "a": 2, "c": {"z": [3, 2, 1], "y": null}}',
    '{"a": true, "b": false, "c": null, "e": -17, "f": 18446744073709551615}',
    '"quote \\" backslash \\\\ slash \\/ newline \\n tab \\t cr \\r bell \\u0007"',
    '{"\\u00e9": 1, "e\\u0301": 2, "e": 3, "\\u00c9": 4, "\\ud83d\\ude00": 5, "\\uffff": 6, "z": 7}',
    '{"caf\\u00e9": "na\\u00efve \\u65e5\\u672c \\u00e9 e\\u0301", "\\u0000": "nul \\u0000"}',
    '{"keyid": "ab", "sig": "00", "\\u007f": "del", "~": "tilde", "A": "upper"}',
    '[1, [2, [3, {"x": [4]}]]]',
    '{"signed": {"_type": "root", "spec_version": "1.0.31", "version": 1, "x-unknown": {"b": [], "a": {}}}}',
    '[-0]',
    '1.5',
    '{"a": 1.0}',
    '[1e3]',
]

vectors = []
for text in INPUTS:
    try:
        canonical = encode_canonical(json.loads(text))
    except Exception:  # the reference refuses it (floats)
        canonical = None
    vectors.append({"json": text, "canonical": canonical})
json.dump(vectors, sys.stdout, ensure_ascii=True, indent=1)
sys.stdout.write("\n")
