#!/usr/bin/env python3
"""Report cycles between the modules of each crate in the Pulse workspace.

Dependency-free (standard library only); reads sources, never builds anything.

Run from anywhere:

    python3 tests/layout/module_cycles.py                 # every crate, non-test cycles
    python3 tests/layout/module_cycles.py --crate pulse-engine --edges
    python3 tests/layout/module_cycles.py --include-tests # also the graph with test modules

Exit status: 1 if any crate has a cycle among its non-test modules, 0 otherwise
(2 on a usage error).

What is a module
    Every file of the crate's module tree. The tree is found by following `mod x;`
    declarations from src/lib.rs and src/main.rs (each is the root "crate" of its own
    target), honouring `#[path = "..."]`, so that `#[path = "funnel_tests.rs"] mod tests;`
    in funnel.rs is the module funnel::tests, file src/funnel_tests.rs. A .rs file under
    src/ that no declaration reaches is still added, named after its path (src/a/b.rs ->
    a::b, src/a/mod.rs -> a), and listed as "undeclared". Inline `mod x { ... }` blocks are
    not modules of their own: they are part of their file (but `super::` inside them is
    resolved correctly, so `use super::*;` in an inline `mod tests` is a self-reference).

Test-only modules
    A module declared under `#[cfg(test)]`, a file named tests.rs or *_tests.rs, and every
    module below one of those. References made inside `#[cfg(test)]` items (an inline
    `#[cfg(test)] mod tests { ... }`, a `#[cfg(test)] use ...;`, a `#[cfg(test)] fn ...`)
    are test-only references too. The main check drops both; --include-tests reports the
    graph with them as well.

What is an edge A -> B
    File A names a path that starts with `crate::`, `super::` or `self::` (in a `use`
    declaration, grouped `use crate::{x, y::{z, w}}` trees over several lines included, or
    in any path expression or type), or starts with the name of a module that A itself
    declares (`mod format;` ... `format::Record`): the "child" kind, which
    --strict-paths leaves out. The path is mapped to the longest prefix that is a module
    (crate::a::b::Item -> a::b if a::b is a module, else a). References resolving to A
    itself are dropped. A parent and its child are distinct nodes.

Root imports
    A path that resolves to the crate root itself (`crate::Item`, or `super::Item` from a
    top-level module) is not an edge of the graph: the root declares every module, so it
    would close a cycle with everything. They are counted per file instead, each item
    named with the module the root re-exports it from (`pub use spec::EngineSpec;`).

Comments (line, block, doc) and string/char literals are blanked before scanning.
"""

import argparse
import os
import re
import sys
from collections import defaultdict

WORKSPACE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# --------------------------------------------------------------------------------------
# Lexing


def blank_comments_and_strings(text):
    """Return (cleaned, strings): comments and literal contents replaced by spaces (newlines
    kept, so offsets and line numbers are unchanged); strings maps the offset of each
    string literal's opening quote to its (unescaped enough) contents."""
    out = list(text)
    strings = {}
    n = len(text)
    i = 0

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        # Line comment (also /// and //!).
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
            continue
        # Block comment, nested.
        if c == "/" and nxt == "*":
            depth = 1
            j = i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    j += 1
            blank(i, j)
            i = j
            continue
        # Raw strings: r"..", r#".."#, br"..", br#".."#, cr"..".
        m = re.compile(r'(?:b|c)?r(#*)"').match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = m.group(1)
            close = '"' + hashes
            start = m.end()
            j = text.find(close, start)
            j = n if j < 0 else j
            strings[m.end() - 1] = text[start:j]
            blank(start, j)
            i = j + len(close)
            continue
        # Ordinary and byte strings.
        if c == '"' or (c in "bc" and nxt == '"' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            q = i if c == '"' else i + 1
            j = q + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            strings[q] = text[q + 1 : j]
            blank(q + 1, j)
            i = j + 1
            continue
        # Char literals ('a', '\n', '\u{1F600}', b'x'); lifetimes ('a) are left alone.
        if c == "'":
            if nxt == "\\":
                j = i + 2
                while j < n and text[j] != "'" and text[j] != "\n":
                    j += 1
                if j < n and text[j] == "'":
                    blank(i + 1, j)
                    i = j + 1
                    continue
            elif i + 2 < n and text[i + 2] == "'" and nxt != "\n":
                blank(i + 1, i + 2)
                i += 3
                continue
        i += 1
    return "".join(out), strings


TOKEN_RE = re.compile(
    r"""
    (?P<ident>r\#[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9][A-Za-z0-9_.]*)
  | (?P<path>::)
  | (?P<arrow>->|=>)
  | (?P<quote>")
  | (?P<punct>[^\sA-Za-z0-9_])
    """,
    re.VERBOSE,
)


class Tok:
    __slots__ = ("kind", "text", "line", "pos")

    def __init__(self, kind, text, line, pos):
        self.kind, self.text, self.line, self.pos = kind, text, line, pos

    def __repr__(self):
        return "Tok(%s,%r,%d)" % (self.kind, self.text, self.line)


def tokenize(cleaned):
    toks = []
    line = 1
    last = 0
    for m in TOKEN_RE.finditer(cleaned):
        line += cleaned.count("\n", last, m.start())
        last = m.start()
        kind = m.lastgroup
        text = m.group()
        if kind == "ident" and text.startswith("r#"):
            text = text[2:]
        toks.append(Tok(kind, text, line, m.start()))
    return toks


# --------------------------------------------------------------------------------------
# Scanning one file


class Ref:
    """One path reference found in a file."""

    __slots__ = ("segments", "anchor", "line", "test", "inline", "kind", "text")

    def __init__(self, segments, anchor, line, test, inline, kind, text):
        self.segments = segments  # path segments after the anchor
        self.anchor = anchor  # 'crate', 'self', ('super', n) or 'child'
        self.line = line
        self.test = test  # inside a #[cfg(test)] item
        self.inline = inline  # inline module names enclosing the reference
        self.kind = kind  # 'use' or 'path'
        self.text = text


class ModDecl:
    __slots__ = ("name", "path_attr", "test", "inline", "line")

    def __init__(self, name, path_attr, test, inline, line):
        self.name, self.path_attr, self.test, self.inline, self.line = name, path_attr, test, inline, line


class FileScan:
    def __init__(self):
        self.refs = []
        self.mods = []  # out-of-line `mod x;` declarations
        self.reexports = {}  # name -> first path segment, from `pub use a::b::Name` at file level
        self.local_items = set()  # names of items defined at file level


def visibility_ahead(toks, i):
    """True when toks[i] is inside the `(...)` of a `pub(...)` visibility."""
    j = i
    while j > 0 and toks[j].text != "(" and i - j < 4:
        j -= 1
    return j > 0 and toks[j].text == "(" and toks[j - 1].text == "pub"


def parse_attr(toks, i, strings):
    """toks[i] is '#'. Returns (end index after ']', is_cfg_test, path_attr)."""
    j = i + 1
    if j < len(toks) and toks[j].text == "!":
        j += 1
    if j >= len(toks) or toks[j].text != "[":
        return i + 1, False, None
    depth = 0
    start = j
    while j < len(toks):
        t = toks[j].text
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth == 0:
                break
        j += 1
    body = toks[start + 1 : j]
    words = [t.text for t in body]
    is_test = False
    if words[:1] == ["cfg"] and "test" in words and "not" not in words:
        is_test = True
    path_attr = None
    if len(body) >= 3 and words[0] == "path" and words[1] == "=" and body[2].kind == "quote":
        path_attr = strings.get(body[2].pos)
    return j + 1, is_test, path_attr


def parse_use_tree(toks, i, prefix, out):
    """Parse a use tree at toks[i]; append (segments, line) to out; return index after it."""
    segs = list(prefix)
    line = toks[i].line if i < len(toks) else 0
    while i < len(toks):
        t = toks[i]
        if t.text == "{":
            i += 1
            while i < len(toks) and toks[i].text != "}":
                if toks[i].text == ",":
                    i += 1
                    continue
                i = parse_use_tree(toks, i, segs, out)
            return i + 1
        if t.text == "*":
            out.append((segs + ["*"], t.line, None))
            return i + 1
        if t.kind == "ident":
            if t.text == "self" and segs and (i + 1 >= len(toks) or toks[i + 1].text != "::"):
                i += 1
                alias = None
                if i + 1 < len(toks) and toks[i].text == "as":
                    alias = toks[i + 1].text
                    i += 2
                out.append((list(segs), t.line, alias))  # `a::{self}` names a itself
                return i
            segs.append(t.text)
            line = t.line
            i += 1
            if i < len(toks) and toks[i].text == "::":
                i += 1
                continue
            alias = None
            if i + 1 < len(toks) and toks[i].text == "as":
                alias = toks[i + 1].text
                i += 2
            out.append((segs, line, alias))
            return i
        if t.text == "::":  # leading `::`
            i += 1
            continue
        return i + 1
    return i


def scan_file(text):
    cleaned, strings = blank_comments_and_strings(text)
    toks = tokenize(cleaned)
    scan = FileScan()
    lines = text.split("\n")

    stack = []  # open delimiters: (char, inline_mod_name or None, is_test_scope)
    pending_test = False
    pending_path = None
    test_item = None  # (depth, is_use) while inside a #[cfg(test)] item that is not a mod
    skip_until = -1  # token index up to which paths were already taken by a `use`
    n = len(toks)

    def inline_names():
        return [s[1] for s in stack if s[1] is not None]

    def in_test():
        return test_item is not None or any(s[2] for s in stack)

    def snippet(line):
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""

    i = 0
    while i < n:
        t = toks[i]
        tx = t.text
        depth = len(stack)

        # Attributes.
        if tx == "#" and i + 1 < n and toks[i + 1].text in ("[", "!"):
            end, is_test, path_attr = parse_attr(toks, i, strings)
            if end > i + 1:
                inner = i + 1 < n and toks[i + 1].text == "!"
                if not inner:
                    pending_test = pending_test or is_test
                    pending_path = path_attr or pending_path
                i = end
                continue

        # The item an attribute applies to. A `mod` (after any visibility) is handled below
        # with the pending attributes; a #[cfg(test)] item of any other kind makes a test
        # region that ends at its `;` or at its closing `}`.
        if (pending_test or pending_path) and tx not in ("mod", "pub"):
            if not (tx in ("(", "crate", "super", "self", "in", ")") and visibility_ahead(toks, i)):
                if pending_test and test_item is None:
                    test_item = (depth, tx == "use")
                pending_test, pending_path = False, None

        if tx == "mod" and t.kind == "ident" and i + 1 < n and toks[i + 1].kind == "ident":
            name = toks[i + 1].text
            after = toks[i + 2].text if i + 2 < n else ""
            is_test = pending_test or in_test()
            if after == ";":
                scan.mods.append(ModDecl(name, pending_path, is_test, inline_names(), t.line))
                pending_test, pending_path = False, None
                i += 3
                continue
            if after == "{":
                stack.append(("{", name, is_test))
                pending_test, pending_path = False, None
                i += 3
                continue

        # Delimiters.
        if tx in ("{", "(", "["):
            stack.append((tx, None, False))
            i += 1
            continue
        if tx in ("}", ")", "]"):
            if stack:
                stack.pop()
            if test_item is not None and tx == "}" and len(stack) == test_item[0] and not test_item[1]:
                test_item = None
            if test_item is not None and len(stack) < test_item[0]:
                test_item = None
            i += 1
            continue
        if tx == ";":
            if test_item is not None and depth == test_item[0]:
                test_item = None
            pending_test, pending_path = False, None
            i += 1
            continue

        # `use` declarations.
        if tx == "use" and t.kind == "ident":
            trees = []
            j = parse_use_tree(toks, i + 1, [], trees)
            # find the terminating ';'
            k = i + 1
            while k < n and toks[k].text != ";":
                k += 1
            is_pub = i > 0 and (toks[i - 1].text == "pub" or (toks[i - 1].text == ")" and i >= 4 and toks[i - 4].text == "pub"))
            top_level = not inline_names() and depth == 0
            for segs, line, alias in trees:
                if not segs:
                    continue
                ref = make_ref(segs, line, in_test(), inline_names(), "use", snippet(line))
                if ref is not None:
                    scan.refs.append(ref)
                if top_level and is_pub and segs[-1] != "*":
                    scan.reexports[alias or segs[-1]] = segs
            skip_until = k
            i += 1
            continue

        # Path expressions and types.
        if i > skip_until and t.kind == "ident" and i + 2 < n and toks[i + 1].text == "::" and toks[i + 2].kind == "ident":
            prev = toks[i - 1].text if i > 0 else ""
            prev2 = toks[i - 2].text if i > 1 else ""
            if prev in ("::", ".", "$") or (prev == "in" and prev2 == "("):
                i += 1
                continue
            segs = [tx]
            j = i + 1
            while j + 1 < n and toks[j].text == "::" and toks[j + 1].kind == "ident":
                segs.append(toks[j + 1].text)
                j += 2
            ref = make_ref(segs, t.line, in_test(), inline_names(), "path", snippet(t.line))
            if ref is not None:
                scan.refs.append(ref)
            i = j
            continue

        # Items defined at file level (for root imports of items the root defines itself).
        if depth == 0 and tx in ("fn", "struct", "enum", "trait", "type", "const", "static", "union", "macro_rules") and i + 1 < n:
            k = i + 1
            if toks[k].text == "!":
                k += 1
            if k < n and toks[k].kind == "ident":
                scan.local_items.add(toks[k].text)
        i += 1
    return scan


def make_ref(segs, line, test, inline, kind, text):
    head = segs[0]
    if head == "crate":
        return Ref(segs[1:], "crate", line, test, inline, kind, text)
    if head == "self":
        return Ref(segs[1:], "self", line, test, inline, kind, text)
    if head == "super":
        k = 0
        while k < len(segs) and segs[k] == "super":
            k += 1
        return Ref(segs[k:], ("super", k), line, test, inline, kind, text)
    # Possibly a declared child module; decided once the module tree is known.
    return Ref(segs, "child", line, test, inline, kind, text)


# --------------------------------------------------------------------------------------
# Module tree


class Module:
    def __init__(self, path, file, test, declared=True):
        self.path = path  # tuple of names; () is the root
        self.file = file
        self.test = test
        self.declared = declared
        self.scan = None
        self.children = set()  # names of out-of-line child modules this file declares

    @property
    def name(self):
        return "::".join(self.path) if self.path else "crate"


def is_test_file(path):
    base = os.path.basename(path)
    return base == "tests.rs" or base.endswith("_tests.rs")


def build_tree(root_file, src_dir):
    modules = {}
    queue = [Module((), root_file, False)]
    while queue:
        m = queue.pop()
        if m.path in modules:
            continue
        modules[m.path] = m
        try:
            with open(m.file, encoding="utf-8") as f:
                m.scan = scan_file(f.read())
        except OSError:
            m.scan = FileScan()
            continue
        base = os.path.basename(m.file)
        d = os.path.dirname(m.file)
        mod_rs = base in ("mod.rs", "lib.rs", "main.rs") or m.file == root_file
        for decl in m.scan.mods:
            if decl.path_attr is not None:
                here = d if (mod_rs or not decl.inline) else os.path.join(d, os.path.splitext(base)[0])
                child_file = os.path.normpath(os.path.join(here, *decl.inline, decl.path_attr))
            else:
                here = d if mod_rs else os.path.join(d, os.path.splitext(base)[0])
                here = os.path.join(here, *decl.inline)
                child_file = os.path.join(here, decl.name + ".rs")
                if not os.path.exists(child_file):
                    child_file = os.path.join(here, decl.name, "mod.rs")
            path = m.path + tuple(decl.inline) + (decl.name,)
            if not decl.inline:
                m.children.add(decl.name)
            test = m.test or decl.test or is_test_file(child_file)
            queue.append(Module(path, child_file, test))
    return modules


def add_undeclared(modules, src_dir, roots):
    known = {os.path.normpath(m.file) for m in modules.values()}
    for dirpath, _, files in os.walk(src_dir):
        for fn in sorted(files):
            if not fn.endswith(".rs"):
                continue
            full = os.path.normpath(os.path.join(dirpath, fn))
            if full in known or full in roots or os.path.relpath(full, src_dir).startswith("bin" + os.sep):
                continue
            rel = os.path.relpath(full, src_dir)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            path = tuple(rel)
            if path in modules:
                path = path + ("<file>",)
            m = Module(path, full, is_test_file(full), declared=False)
            with open(full, encoding="utf-8") as f:
                m.scan = scan_file(f.read())
            modules[path] = m


# --------------------------------------------------------------------------------------
# Edges


class Edge:
    __slots__ = ("src", "dst", "file", "line", "text", "test", "kind")

    def __init__(self, src, dst, file, line, text, test, kind):
        self.src, self.dst, self.file, self.line, self.text, self.test, self.kind = src, dst, file, line, text, test, kind


def longest_prefix(modules, full):
    for k in range(len(full), -1, -1):
        if tuple(full[:k]) in modules:
            return tuple(full[:k]), list(full[k:])
    return (), list(full)


def compute_edges(modules, strict_paths):
    edges = []
    root_imports = []  # (module, file, line, item, text, test)
    root = modules.get(())
    for m in modules.values():
        for r in m.scan.refs:
            here = list(m.path) + list(r.inline)
            if r.anchor == "crate":
                full = r.segments
                kind = "crate"
            elif r.anchor == "self":
                full = here + r.segments
                kind = "self"
            elif r.anchor == "child":
                if strict_paths and m.path != ():
                    continue
                # A bare path names a module only if this file declares it (at the same
                # inline level), or, in the root, any top-level module.
                scope = tuple(here)
                if not (scope + (r.segments[0],)) in modules:
                    continue
                if r.inline and (tuple(m.path) + tuple(r.inline) + (r.segments[0],)) not in modules:
                    continue
                full = here + r.segments
                kind = "child"
            else:
                ups = r.anchor[1]
                if ups > len(here):
                    continue
                full = here[: len(here) - ups] + r.segments
                kind = "super"
            target, rest = longest_prefix(modules, full)
            if target == m.path:
                continue
            test = m.test or r.test or modules[target].test
            if target == ():
                item = rest[0] if rest else "*"
                root_imports.append((m, r.line, item, r.text, test))
                continue
            edges.append(Edge(m.path, target, m.file, r.line, r.text, test, kind))
    return edges, root_imports


def tarjan(nodes, adj):
    index = {}
    low = {}
    on = set()
    st = []
    sccs = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        st.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = st.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return sccs


def cycles(modules, edges, include_tests):
    nodes = [p for p, m in modules.items() if p != () and (include_tests or not m.test)]
    keep = set(nodes)
    adj = defaultdict(set)
    first = {}
    count = defaultdict(int)
    for e in edges:
        if not include_tests and e.test:
            continue
        if e.src not in keep or e.dst not in keep:
            continue
        adj[e.src].add(e.dst)
        count[(e.src, e.dst)] += 1
        if (e.src, e.dst) not in first or (e.file, e.line) < (first[(e.src, e.dst)].file, first[(e.src, e.dst)].line):
            first[(e.src, e.dst)] = e
    result = []
    for comp in tarjan(nodes, adj):
        if len(comp) < 2:
            continue
        cs = set(comp)
        inner = sorted((k for k in first if k[0] in cs and k[1] in cs))
        result.append((comp, [(first[k], count[k]) for k in inner]))
    return result


# --------------------------------------------------------------------------------------
# Crates and output


def mod_name(path):
    return "::".join(path) if path else "crate"


def crate_name(crate_dir):
    try:
        with open(os.path.join(crate_dir, "Cargo.toml"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r'\s*name\s*=\s*"([^"]+)"', line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return os.path.basename(os.path.normpath(crate_dir))


def find_crates():
    crates = []
    base = os.path.join(WORKSPACE, "crates")
    for d in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        full = os.path.join(base, d)
        if os.path.isfile(os.path.join(full, "Cargo.toml")) and os.path.isdir(os.path.join(full, "src")):
            crates.append(full)
    tests = os.path.join(WORKSPACE, "tests")
    if os.path.isfile(os.path.join(tests, "src", "lib.rs")):
        crates.append(tests)
    return crates


def rel(path):
    return os.path.relpath(path, WORKSPACE)


def analyse_target(crate_dir, root_file, strict_paths):
    src = os.path.join(crate_dir, "src")
    modules = build_tree(root_file, src)
    edges, root_imports = compute_edges(modules, strict_paths)
    return modules, edges, root_imports


def root_item_source(modules, item):
    root = modules[()]
    if item in root.scan.reexports:
        segs = root.scan.reexports[item]
        segs = segs[1:] if segs and segs[0] in ("crate", "self") else segs
        target, _ = longest_prefix(modules, segs)
        if target != ():
            return "re-export of " + mod_name(target)
        return "re-export of " + "::".join(segs)
    if item in root.children or (item,) in modules:
        return "module"
    if item in root.scan.local_items:
        return "defined in root"
    return "?"


def report_target(label, modules, edges, root_imports, args, out):
    non_test = [m for m in modules.values() if not m.test]
    test_mods = [m for m in modules.values() if m.test]
    main_edges = [e for e in edges if not e.test]
    out.append(
        "== %s: %d modules (%d test-only), %d module edges (%d non-test), %d root imports (%d non-test)"
        % (label, len(modules), len(test_mods), len(edges), len(main_edges), len(root_imports),
           sum(1 for r in root_imports if not r[4]))
    )
    undeclared = [m for m in modules.values() if not m.declared]
    for m in undeclared:
        out.append("  undeclared file (no `mod` reaches it): %s as %s" % (rel(m.file), m.name))

    found = cycles(modules, edges, False)
    if not found:
        out.append("  no cycles among non-test modules")
    for n, (comp, inner) in enumerate(found, 1):
        out.append("  cycle %d (%d modules): %s" % (n, len(comp), ", ".join(mod_name(c) for c in comp)))
        for e, c in inner:
            out.append(
                "    %s -> %s  [%s, %d ref%s]  %s:%d  %s"
                % (mod_name(e.src), mod_name(e.dst), e.kind, c, "" if c == 1 else "s", rel(e.file), e.line, e.text)
            )
    if args.include_tests:
        with_tests = cycles(modules, edges, True)
        plain = {tuple(c) for c, _ in found}
        extra = [(c, i) for c, i in with_tests if tuple(c) not in plain]
        if not extra:
            out.append("  with test modules: no further cycles")
        for n, (comp, inner) in enumerate(extra, 1):
            names = ", ".join(mod_name(c) + (" [test]" if modules[c].test else "") for c in comp)
            out.append("  cycle with tests %d (%d modules): %s" % (n, len(comp), names))
            for e, c in inner:
                out.append(
                    "    %s -> %s  [%s%s, %d ref%s]  %s:%d  %s"
                    % (mod_name(e.src), mod_name(e.dst), e.kind, ", test" if e.test else "", c,
                       "" if c == 1 else "s", rel(e.file), e.line, e.text)
                )

    shown_roots = [r for r in root_imports if args.include_tests or not r[4]]
    if shown_roots:
        out.append("  root imports (paths to the crate root itself), per file:")
        per_file = defaultdict(list)
        for m, line, item, text, test in shown_roots:
            per_file[m.file].append((line, item, test))
        for f in sorted(per_file):
            items = defaultdict(list)
            for line, item, test in per_file[f]:
                items[item].append(line)
            desc = ", ".join(
                "%s (%s; line %s)" % (it, root_item_source(modules, it), ",".join(str(l) for l in sorted(ls)))
                for it, ls in sorted(items.items())
            )
            out.append("    %s: %d  %s" % (rel(f), len(per_file[f]), desc))

    if args.edges:
        out.append("  edges (src -> dst, refs, first occurrence):")
        grouped = defaultdict(list)
        for e in edges:
            if args.include_tests or not e.test:
                grouped[(e.src, e.dst)].append(e)
        for (s, d), es in sorted(grouped.items()):
            es.sort(key=lambda e: (e.file, e.line))
            e = es[0]
            tag = ",".join(sorted({x.kind for x in es})) + (", test" if all(x.test for x in es) else "")
            out.append("    %s -> %s  [%s, %d]  %s:%d  %s" % (mod_name(s), mod_name(d), tag, len(es), rel(e.file), e.line, e.text))
    return bool(found)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crate", action="append", help="only this crate (package name or directory name); repeatable")
    ap.add_argument("--include-tests", action="store_true", help="also report cycles and root imports that involve test-only modules")
    ap.add_argument("--edges", action="store_true", help="print every module edge")
    ap.add_argument("--strict-paths", action="store_true",
                    help="only crate::/super::/self:: paths make edges (no bare `child::...` paths from a declaring parent)")
    ap.add_argument("--workspace", help="the workspace to read (default: the one holding this script)")
    args = ap.parse_args(argv)
    if args.workspace:
        global WORKSPACE
        WORKSPACE = os.path.abspath(args.workspace)

    crates = find_crates()
    if args.crate:
        wanted = set(args.crate)
        crates = [c for c in crates if crate_name(c) in wanted or os.path.basename(os.path.normpath(c)) in wanted]
        if not crates:
            print("no crate named %s" % ", ".join(sorted(wanted)), file=sys.stderr)
            return 2

    out = []
    any_cycle = False
    for c in crates:
        name = crate_name(c)
        src = os.path.join(c, "src")
        roots = [os.path.join(src, f) for f in ("lib.rs", "main.rs") if os.path.isfile(os.path.join(src, f))]
        bindir = os.path.join(src, "bin")
        if os.path.isdir(bindir):
            roots += [os.path.join(bindir, f) for f in sorted(os.listdir(bindir)) if f.endswith(".rs")]
        primary = None
        for idx, root in enumerate(roots):
            modules, edges, root_imports = analyse_target(c, root, args.strict_paths)
            if idx == 0:
                primary = modules
                add_undeclared(modules, src, {os.path.normpath(r) for r in roots})
                edges, root_imports = compute_edges(modules, args.strict_paths)
            elif len(modules) == 1:
                out.append("== %s [%s]: crate root with no modules of its own" % (name, rel(root)))
                continue
            any_cycle |= report_target("%s [%s]" % (name, rel(root)), modules, edges, root_imports, args, out)
    print("\n".join(out))
    return 1 if any_cycle else 0


if __name__ == "__main__":
    sys.exit(main())
