#!/usr/bin/python3
"""Reference outputs of CLIP's tokenizer for the Go tests (golden.json).

An independent Python implementation of the tokenizer's documented behaviour,
built on the same libraries the original uses: ftfy.fix_text, html.unescape,
the `regex` module (Unicode classes, case-insensitive pattern) and Python's
str.lower. The BPE loop is written from the algorithm's description.

Regenerate (from clip/tokenizer/; needs Debian's python3-regex and
python3-wcwidth, and ftfy 6.x importable, e.g. from a source checkout):

    PYTHONPATH=/path/to/ftfy-src /usr/bin/python3 testdata/golden.py \
        --vocab ../../../shared/clip/bpe_simple_vocab_16e6.txt.gz > testdata/golden.json
"""
import argparse
import gzip
import hashlib
import html
import json
import random
import sys

import ftfy
import regex

N_MERGES = 49152 - 256 - 2
SPLIT = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)


def byte_symbols():
    """Byte -> printable character, GPT-2 style, in vocabulary order."""
    keep = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    order = keep + [b for b in range(256) if b not in keep]
    return table, order


class Reference:
    def __init__(self, vocab_path):
        with gzip.open(vocab_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : N_MERGES + 1]
        self.sym, order = byte_symbols()
        self.unsym = {c: b for b, c in self.sym.items()}
        tokens = [self.sym[b] for b in order]
        tokens += [t + "</w>" for t in tokens]
        self.rank = {}
        for i, line in enumerate(lines):
            a, b = line.split()
            self.rank[(a, b)] = i
            tokens.append(a + b)
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        self.tokens = tokens
        self.id = {t: i for i, t in enumerate(tokens)}

    @staticmethod
    def clean(text):
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip()
        return text.lower()

    def bpe(self, piece):
        parts = [self.sym[b] for b in piece.encode("utf-8")]
        parts[-1] += "</w>"
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.rank.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best = r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and self.rank.get((parts[i], parts[i + 1])) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return [self.id[p] for p in parts]

    def encode(self, text):
        ids = []
        for piece in SPLIT.findall(self.clean(text)):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.id[piece])
            else:
                ids.extend(self.bpe(piece))
        return ids

    def decode(self, ids):
        data = bytes(self.unsym[c] for i in ids for c in self.tokens[i])
        return data.decode("utf-8", errors="replace").replace("</w>", " ")


CASES = [
    # plain captions
    "a photo of a cat",
    "A Photo Of A Cat.",
    "a diagram",
    "A close-up of two dogs playing in the snow, 4k, trending on artstation",
    "",
    "   ",
    "x",
    "I",
    # punctuation
    "Hello, world! How are you?",
    "wait... what?!?",
    "(parenthesised) [bracketed] {braced} <angled>",
    "email me: someone@example.com or visit https://example.org/a_b?c=d&e=f#frag",
    "#hashtag @mention $100 50% 3*4=12 a/b a\\b a|b ~tilde `tick` ^caret",
    "---===***!!!???",
    "\"quoted\" 'single' `back`",
    # numbers
    "1234567890",
    "3.14159 and 2,718 and -42 and +7 and 1e10",
    "in 1999 there were 10,000 people",
    "½ ¾ ² ³ ① ⅻ Ⅻ ٣ ३ 〇",
    # contractions
    "don't",
    "I'M",
    "we're they've she'll he'd it's can't",
    "WE'RE THEY'VE SHE'LL HE'D IT'S CAN'T",
    "'s 't 're 've 'm 'll 'd",
    "rock'n'roll o'clock y'all",
    "'sam 'tis 'twas",
    "it's a dog's life",
    "don’t stop",
    "it\u2018s \u201cquoted\u201d \u201ahere\u201b \u201ethere\u201f",
    # HTML entities
    "&amp;",
    "&amp;amp;",
    "&amp;amp;amp;amp;",
    "&lt;3",
    "i &lt;3 you",
    "&lt;b&gt;bold&lt;/b&gt;",
    "<b>bold</b> &amp; &lt;3",
    "&quot;hi&quot; &apos;there&apos;",
    "&#39;s &#x27;t &#8217;s",
    "&#128512; &#x1F600;",
    "&eacute;t&eacute; &EACUTE;T&EACUTE; &ntilde; &NTILDE; &nTILDE;",
    "BUNDESSTRA&SZLIG;E",
    "&copy; 2024 &reg; &trade; &hellip; &mdash; &nbsp;x",
    "&amp &lt &gt &copy",
    "&ampx &notit; &noti; this&not that",
    "&#0; &#13; &#128; &#x80; &#x9f; &#1; &#xD800; &#x110000; &#99999999999;",
    "&#65 &#x41 &#65;",
    "&unknown; & ; &; &#; &#x; &#xg;",
    "AT&T and Q&A",
    "line one <\n&amp; line two",
    "line one &amp;\nline two < &amp;",
    "&amp;#8217;",
    "&lt;&lt;&lt;",
    # accents, NFC vs NFD
    "café",
    "cafe\u0301",
    "Ångström",
    "A\u030angstro\u0308m",
    "naïve résumé über",
    "ÀÉÎÕÜ",
    "Crème brûlée",
    "e\u0301\u0301 combining twice",
    "\u0301leading combining",
    # mojibake
    "cafÃ©",
    "donâ€™t",
    "â€œquotedâ€\x9d",
    "The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows.",
    "voilÃ le travail",
    "PIÙ FORTE",
    "Ã la carte",
    "sÃ³",
    "\x93curly\x94 quotes via C1",
    "\x85ellipsis",
    # scripts
    "東京タワーの写真",
    "北京烤鸭",
    "한국어 문장입니다",
    "ｶﾀｶﾅ ﾃﾞｽ",
    "ＬＯＵＤ　ＮＯＩＳＥＳ ＡＢＣ１２３",
    "Привет, мир!",
    "ΟΔΟΣ ΣΑΣ Σ ΌΣΟΣ. ΣΑ",
    "İstanbul IŞIK ıi",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Straße STRASSE ß ẞ",
    "ﬁsh ﬂour ﬀ ﬃ ﬄ ﬅ ﬆ Ĳ ǅ",
    # emoji
    "I love pizza 🍕🍕",
    "👍🏽 thumbs",
    "👨‍👩‍👧‍👦 family",
    "🇫🇷🇯🇵 flags",
    "❤️ heart ✨",
    "🏴󠁧󠁢󠁷󠁬󠁳󠁿 wales",
    # whitespace
    "multiple    spaces",
    "tabs\tand\nnewlines\r\nand\rcarriage",
    "  leading and trailing  ",
    "nbsp\u00a0here\u2003em\u3000ideographic\u2028ls\u2029ps\u0085nel",
    "zero\u200bwidth\u200cjoin\u200dx\ufeffbom",
    "\ufeffstarts with bom",
    "vertical\x0btab\x0cformfeed\x1cfs\x1fus",
    "ctrl\x00\x01\x07\x7fchars",
    "\x1b[31mred\x1b[0m text",
    "soft\u00adhyphen",
    # special tokens
    "<|startoftext|>",
    "<|endoftext|>",
    "hello <|endoftext|> world",
    "<|ENDOFTEXT|> upper",
    "<|startoftext|>x<|endoftext|>",
    "<|endoftext",
    "it'ſ long s",
    # long words
    "a" * 300,
    "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "ab" * 150,
    "🍕" * 40,
    "x" + "ä" * 100,
    "the " * 120,
]


def random_cases(n, seed=20240614):
    rng = random.Random(seed)
    alphabet = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n.,;:!?'\"-()[]<>&#/@%")
        + list("éèàüößçñÉÀÜ")
        + ["\u0301", "\u0308", "\u200d", "\ufe0f"]
        + list("日本語中文한국")
        + list("αβγΣσςΑΩ")
        + list("абвгдЖЩ")
        + ["🍕", "👍", "🏽", "❤", "✨"]
        + ["&amp;", "&lt;", "&#39;", "'s", "'ll", "’", "“", "”"]
        + list("①½²٣")
    )
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        out.append("".join(rng.choice(alphabet) for _ in range(k)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True)
    args = ap.parse_args()
    ref = Reference(args.vocab)
    with open(args.vocab, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert ref.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]
    cases = []
    for text in CASES + random_cases(60):
        ids = ref.encode(text)
        cases.append({"text": text, "clean": ref.clean(text), "ids": ids, "decode": ref.decode(ids)})
    sym, order = byte_symbols()
    byte_id = {b: ref.id[sym[b]] for b in range(256)}
    byte_end = {b: ref.id[sym[b] + "</w>"] for b in range(256)}
    decode_cases = []
    for raw in [b"\xe2\x82", b"\xe2\x82\xac", b"\xf0\x9f\x8d", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80\x80a",
                b"\xf4\x90\x80\x80", b"\xe0\x80\xaf", b"ok\xff"]:
        ids = [byte_id[b] for b in raw[:-1]] + [byte_end[raw[-1]]]
        decode_cases.append({"ids": ids, "text": ref.decode(ids)})
    out = {
        "regenerate": "PYTHONPATH=/path/to/ftfy-src /usr/bin/python3 testdata/golden.py "
        "--vocab ../../../shared/clip/bpe_simple_vocab_16e6.txt.gz > testdata/golden.json",
        "python": sys.version.split()[0],
        "ftfy": ftfy.__version__,
        "regex": regex.__version__,
        "vocab_sha256": digest,
        "cases": cases,
        "decode_cases": decode_cases,
    }
    json.dump(out, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
