#!/usr/bin/env python3
"""Writes lang/timb.pot from every @tr("...") in ui/*.slint, and reports
catalogue entries that are missing or stale. Run after changing UI text:
    python3 app/timb/lang/extract.py
(slint-tr-extractor does the same; this avoids installing it.)"""
import pathlib, re, sys

here = pathlib.Path(__file__).resolve().parent
ui = here.parent / "ui"
TR = re.compile(r'@tr\(\s*"((?:[^"\\]|\\.)*)"')

def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")

def po_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

msgids = []
for f in sorted(ui.glob("*.slint")):
    for m in TR.finditer(f.read_text(encoding="utf-8")):
        s = unescape(m.group(1))
        if s not in msgids:
            msgids.append(s)

pot = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
for s in msgids:
    pot += [f"msgid {po_quote(s)}", 'msgstr ""', ""]
(here / "timb.pot").write_text("\n".join(pot), encoding="utf-8")

PO = re.compile(r'^msgid "((?:[^"\\]|\\.)*)"\nmsgstr "((?:[^"\\]|\\.)*)"', re.M)
bad = 0
for po in sorted(here.glob("*/LC_MESSAGES/timb.po")):
    have = {unescape(a): unescape(b) for a, b in PO.findall(po.read_text(encoding="utf-8")) if a}
    missing = [s for s in msgids if not have.get(s)]
    stale = [s for s in have if s not in msgids]
    for s in missing:
        print(f"{po.parent.parent.name}: missing: {s}")
    for s in stale:
        print(f"{po.parent.parent.name}: stale: {s}")
    bad += len(missing)
print(f"{len(msgids)} strings")
sys.exit(1 if bad else 0)
