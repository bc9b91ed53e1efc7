#!/usr/bin/env python3
"""Renders mailbridge(8) and mailbridge.json(5) from their templates (deploy/man/*.in) and README.md, the one source of
the key table ("## Configuration") and the reply table ("## Replies and what they mean"): the man pages are made
from the very rows the README shows, so the two cannot drift. Usage: render.py README.md OUTDIR VERSION DATE COMMAND
(COMMAND: the name the program has on PATH, mailbridge; the daemon's page is COMMAND.8, the configuration's COMMAND.json.5).
Failure: exits non-zero naming a section or table it cannot find (the package build stops)."""
import re
import sys

def section(readme, title):
    match = re.search(r'^## ' + re.escape(title) + r'\n(.*?)(?=^## |\Z)', readme, re.S | re.M)
    if not match:
        sys.exit(f'render.py: README.md has no section "## {title}"')
    return match.group(1)

def table(text, title):
    rows = [line for line in text.splitlines() if line.startswith('|')]
    if len(rows) < 3:
        sys.exit(f'render.py: no table in README section "{title}"')
    return [split_row(row) for row in rows[2:]]

def split_row(row):
    cells, cell, code = [], '', False
    for c in row.strip()[1:-1]:
        if c == '`':
            code = not code
        if c == '|' and not code:
            cells.append(cell.strip())
            cell = ''
        else:
            cell += c
    cells.append(cell.strip())
    return cells

SPECIAL = {'\u2192': r'\(->', '\u00d7': r'\(mu', '\u2026': '...', '\u2014': r'\(em', '\u2013': r'\(en', '\u00ee': r'\(^i'}

def roff(text):
    """Markdown inline text to roff: `code` and **bold** in bold, *x* in italics, backslashes and leading dots escaped."""
    text = text.replace('\\', r'\e')
    for char, escape in SPECIAL.items():
        text = text.replace(char, escape)
    text = re.sub(r'`([^`]*)`', lambda m: r'\fB' + m.group(1).replace('-', r'\-') + r'\fR', text)
    text = re.sub(r'\*\*([^*]+)\*\*', r'\\fB\1\\fR', text)
    text = re.sub(r'(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])', r'\\fI\1\\fR', text)
    text = re.sub(r'\[([^\]]+)\]\([^)]+\)', r'\1', text)
    lines = [(r'\&' + line if line.startswith(('.', "'")) else line) for line in text.split('\n')]
    return '\n'.join(lines)

def paragraph(text):
    """The first paragraph of a section, as roff."""
    first = text.strip().split('\n\n')[0]
    return roff(' '.join(line.strip() for line in first.splitlines()))

def main():
    readme_path, out, version, date, command = sys.argv[1:6]
    readme = open(readme_path, encoding='utf-8').read()
    configuration = section(readme, 'Configuration')
    keys = ''.join(f'.TP\n{roff(key)}\nDefault: {roff(default)}.\n{roff(meaning)}\n' for key, default, meaning in table(configuration, 'Configuration'))
    replies_text = section(readme, 'Replies and what they mean')
    replies = ''.join(f'.TP\n{roff(reply)}\n{roff(when)}\n' for reply, when in table(replies_text, 'Replies and what they mean'))
    values = {'@VERSION@': version, '@DATE@': date, '@KEYS@': keys.rstrip('\n'), '@REPLIES@': replies.rstrip('\n'),
              '@CONFIGURATION@': paragraph(configuration), '@COMMAND@': command, '@COMMANDUPPER@': command.upper()}
    here = sys.argv[0].rsplit('/', 1)[0] if '/' in sys.argv[0] else '.'
    for name, target in (('mailbridge.8', f'{command}.8'), ('mailbridge.json.5', f'{command}.json.5')):
        text = open(f'{here}/{name}.in', encoding='utf-8').read()
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        if re.search(r'@[A-Z]+@', text):
            sys.exit(f'render.py: {name}.in has a placeholder left')
        with open(f'{out}/{target}', 'w', encoding='utf-8') as f:
            f.write(text)

main()
