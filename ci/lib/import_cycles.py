#!/usr/bin/env python3
"""Import cycles between the modules of each crate, and between its folders: prints every
module's edges and the folders' order, and fails naming any cycle.

usage: python3 ci/lib/import_cycles.py [CRATE_DIR ...]
       (default: rcu-ctx rcu-sys rcu-alloc rcu-core; run from anywhere, paths are taken
       relative to the repository root; exit status 1 if any crate has a cycle, 2 on bad use)

What counts as an edge from module A to module B (house style: one concept per file, and the
files' `use crate::` edges form a DAG, so a reader can learn the crate bottom-up):
- a `use` item in A (private or `pub`, at any depth: in a function too) naming B or an item
  of B, through `crate::`, `super::`, `self::` or a child module's name;
- a path `crate::B::...`, `super::...` or `self::...` anywhere in A's code.
An item re-exported at the crate root (`crate::ForkLock`) counts as an edge to the module that
lib.rs's `pub use` lines take it from (`pub use api::*` of an inline `mod api` included), not
to lib.rs. Comments, doc comments (so doctests and intra-doc links), string and char literals
are ignored. Every file under src/ (but src/bin/) is a module, `a/b.rs` or `a/b/mod.rs` being
`a::b`; an inline `mod m { ... }` (a `#[cfg(test)] mod tests`, say) is a module of its own,
`file::m`, whose imports are its own: a test module importing the crate's tokens makes no
cycle, since nothing imports the test module. lib.rs is the node `crate`, with the edges of
its own code (functions defined at the root, private `use`s); its `pub use` lines and `mod`
declarations are the re-export map, not edges. Paths the analysis cannot place (a macro's
`$crate::`, a path through a type alias) are not guessed at: they are reported as warnings.

Folders (house style: a folder per subsystem, and imports point one way between folders as
between files): a module's folder is the first segment of its path (`read::registry` and
`read` are in `read`; a file at the root of src/, `stats.rs`, is a folder of its own); lib.rs
and its inline modules are the folder `crate`. The folder graph is the module graph mapped to
folders, without the edges of `#[cfg(test)]` modules (a test may use the public API from
anywhere) and without a folder's edges to itself. A cycle in it fails, naming every module
edge between the folders of the cycle, with its file and line, even where the modules make no
cycle; without one, the folders are printed in an order where each imports only folders
before it.
"""

import bisect
import os
import re
import sys

DEFAULT_CRATES = ["rcu-ctx", "rcu-sys", "rcu-alloc", "rcu-core"]
ROOT = "crate"


def strip(text):
    """The text with comments and the contents of string and char literals blanked out
    (newlines kept, so positions and line numbers still match the file)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join(c if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        prev = text[i - 1] if i else " "
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif re.match(r"(?:b|c)?r#*\"", text[i:i + 300]) and not (prev.isalnum() or prev == "_"):
            m = re.match(r"(?:b|c)?r(#*)\"", text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append('"' + blank(text[i + 1:j - 1]) + '"')
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}', b'x'), or a lifetime / label ('a).
            m = re.match(r"'(?:\\(?:u\{[0-9a-fA-F]*\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:])
            if m:
                out.append("'" + blank(text[i + 1:i + m.end() - 1]) + "'")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def file_modules(src):
    """Module path (a tuple of names; () is the crate root) -> file, for every file under
    src/ (but src/bin/)."""
    mods = {}
    for root, dirs, files in os.walk(src):
        if os.path.relpath(root, src) == ".":
            dirs[:] = [d for d in dirs if d != "bin"]
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts == ["lib"] or parts == ["main"]:
                parts = []
            elif parts[-1] == "mod":
                parts = parts[:-1]
            mods[tuple(parts)] = path
    return mods


def matching_brace(text, open_pos):
    depth = 0
    for j in range(open_pos, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text)


def inline_modules(text):
    """(start, end, name) of every inline `mod name { ... }` in a stripped file."""
    spans = []
    for m in re.finditer(r"(?<![\w:$])mod\s+(\w+)\s*\{", text):
        open_pos = m.end() - 1
        spans.append((m.start(), matching_brace(text, open_pos), m.group(1)))
    return spans


TEST_ATTR_RE = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def attributes_before(text, pos):
    """The outer attributes (`#[...]`) and visibility written just before `pos`, as text."""
    j = pos
    while True:
        k = j
        while k > 0 and text[k - 1].isspace():
            k -= 1
        vis = re.search(r"pub(?:\s*\([^()]*\))?$", text[max(0, k - 40):k])
        if vis:
            j = k - len(vis.group(0))
            continue
        if k == 0 or text[k - 1] != "]":
            return text[j:pos]
        depth, i = 0, k - 1
        while i >= 0:
            if text[i] == "]":
                depth += 1
            elif text[i] == "[":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        h = i - 1
        while h >= 0 and text[h].isspace():
            h -= 1
        if h < 0 or text[h] != "#":
            return text[j:pos]
        j = h


def test_only(text, pos):
    """True if the item starting at `pos` (a `mod`) is under `#[cfg(test)]`."""
    return bool(TEST_ATTR_RE.search(attributes_before(text, pos)))


def module_at(base, spans, pos):
    """The module whose code `pos` is in: the file's module, or an inline one inside it."""
    inner = sorted((s for s in spans if s[0] <= pos <= s[1]), key=lambda s: s[0])
    return base + tuple(s[2] for s in inner)


USE_RE = re.compile(r"(?<![\w:$])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]*);")
PATH_RE = re.compile(r"(?<![\w:$])(crate|super|self)((?:\s*::\s*\w+)+)")


def parse_use_tree(tree):
    """`a::{b::{self, C}, d as e, *}` -> [(["a", "b"], "b"), (["a", "b", "C"], "C"),
    (["a", "d"], "e"), (["a", "*"], "*")]: each imported path and the name it binds."""
    toks = re.findall(r"::|\{|\}|,|\*|\w+", tree)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def tree_at(prefix):
        segs = list(prefix)
        if peek() == "::":  # a leading `::`: an external crate
            take()
            segs.append("::")
        while True:
            t = peek()
            if t == "{":
                take()
                items = []
                while peek() not in (None, "}"):
                    items += tree_at(segs)
                    if peek() == ",":
                        take()
                if peek() == "}":
                    take()
                return items
            if t == "*":
                take()
                return [(segs + ["*"], "*")]
            if t is None or not re.match(r"\w+$", t):
                return []
            segs.append(take())
            if peek() == "::":
                take()
                continue
            name = segs[-1]
            if peek() == "as":
                take()
                name = take() if peek() is not None else name
            if name == "self":
                segs = segs[:-1]
                name = segs[-1] if segs else "self"
            return [(segs, name)]

    items = []
    while peek() is not None:
        items += tree_at([])
        if peek() == ",":
            take()
        elif peek() is not None and peek() not in ("::", "{"):
            take()
    return items


class Crate:
    def __init__(self, crate_dir):
        self.name = os.path.basename(os.path.normpath(crate_dir))
        self.src = os.path.join(crate_dir, "src")
        self.files = file_modules(self.src)
        self.texts = {}
        self.spans = {}
        self.modules = set(self.files)
        self.file_of = {mod: mod for mod in self.files}  # module -> the file it is written in
        self.tests = set()  # modules declared under #[cfg(test)] (inline or `mod m;`)
        for mod, path in self.files.items():
            with open(path, encoding="utf-8") as f:
                raw = f.read()
            text = strip(raw)
            self.texts[mod] = (raw, text)
            self.spans[mod] = inline_modules(text)
            for start, _, _ in self.spans[mod]:
                inline = module_at(mod, self.spans[mod], start)
                self.modules.add(inline)
                self.file_of[inline] = mod
            for m in re.finditer(r"(?<![\w:$])mod\s+(\w+)\s*[{;]", text):
                if test_only(text, m.start()):
                    outer = [s for s in self.spans[mod] if s[0] != m.start()]
                    self.tests.add(module_at(mod, outer, m.start()) + (m.group(1),))
        self.reexports = {}  # name at the crate root -> module it is taken from
        self.warnings = []
        self.build_reexports()

    def display(self, mod):
        return "::".join(mod) if mod else ROOT

    def folder_of(self, mod):
        """`read::registry` -> `read`; `stats` -> `stats`; lib.rs and its inline modules ->
        `crate`."""
        return ROOT if self.file_of.get(mod, mod) == () else mod[0]

    def is_test(self, mod):
        return any(mod[:k] in self.tests for k in range(1, len(mod) + 1))

    def location(self, mod_file, pos):
        raw, _ = self.texts[mod_file]
        line = raw.count("\n", 0, pos) + 1
        return f"{os.path.relpath(self.files[mod_file], self.src)}:{line}"

    def longest_module(self, segs):
        """(module, rest): the longest prefix of `segs` that is a module of the crate."""
        for k in range(len(segs), -1, -1):
            if tuple(segs[:k]) in self.modules:
                return tuple(segs[:k]), segs[k:]
        return (), segs

    def absolute(self, here, segs):
        """Resolve `crate::`/`super::`/`self::` (and, in a `use`, a child module's name) to
        a path from the crate root; None for an external crate."""
        if not segs or segs[0] == "::":
            return None
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] in ("super", "self"):
            base = list(here)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            return base + segs
        if tuple(here) + (segs[0],) in self.modules:
            return list(here) + segs
        return None  # std, core, another crate, or a name in scope

    def target(self, segs):
        """The module a path from the crate root refers to, or None if it cannot be placed."""
        mod, rest = self.longest_module(segs)
        if mod:
            return mod
        if not rest or rest[0] == "*":
            return ()
        if rest[0] in self.reexports:
            return self.reexports[rest[0]]
        return ()  # defined in lib.rs itself (a root function, a `pub mod` inline module)

    def build_reexports(self):
        raw, text = self.texts.get((), ("", ""))
        spans = self.spans.get((), [])
        root_level = []
        for m in USE_RE.finditer(text):
            if not m.group(1):
                continue
            mod = module_at((), spans, m.start())
            for segs, name in parse_use_tree(m.group(2)):
                root_level.append((mod, segs, name))
        # Top-level `pub use` lines, then those of inline modules glob re-exported at the root.
        globs = {tuple(self.absolute((), s[:-1]) or []) for mod, s, n in root_level
                 if mod == () and n == "*"}
        for mod, segs, name in root_level:
            if name == "*" or not (mod == () or mod in globs):
                continue
            path = self.absolute(mod, segs)
            if path is None:
                continue  # re-exported from another crate
            target, _ = self.longest_module(path)
            if target:
                self.reexports[name] = target

    def edges(self):
        """module -> {dependency: first location}"""
        graph = {mod: {} for mod in self.modules}

        def add(src, dst, loc):
            if dst is None or dst == src:
                return
            graph.setdefault(src, {}).setdefault(dst, loc)
            graph.setdefault(dst, {})

        for mod_file in self.files:
            raw, text = self.texts[mod_file]
            spans = self.spans[mod_file]
            use_spans = []
            for m in USE_RE.finditer(text):
                use_spans.append((m.start(), m.end()))
                here = module_at(mod_file, spans, m.start())
                if here == () and m.group(1):
                    continue  # the root's re-exports: the map, not edges
                for segs, _ in parse_use_tree(m.group(2)):
                    path = self.absolute(here, segs)
                    if path is not None:
                        add(here, self.target(path), self.location(mod_file, m.start()))
            for m in PATH_RE.finditer(text):
                segs = [m.group(1)] + re.findall(r"\w+", m.group(2))
                here = module_at(mod_file, spans, m.start())
                path = self.absolute(here, segs)
                if path is None:
                    continue
                add(here, self.target(path), self.location(mod_file, m.start()))
            if mod_file == ():
                self.root_paths(text, spans, use_spans, add)
        return graph

    def root_paths(self, text, spans, use_spans, add):
        """lib.rs's own code names top-level modules and re-exported items without `crate::`."""
        decl = {m.start(1) for m in re.finditer(r"(?<![\w:$])mod\s+(\w+)", text)}
        for m in re.finditer(r"(?<![\w:.$'])([A-Za-z_]\w*)\b(\s*::)?", text):
            pos = m.start(1)
            if pos in decl or any(s <= pos < e for s, e in use_spans):
                continue
            if module_at((), spans, pos) != ():
                continue  # inline modules' own paths go through crate::/super::
            name = m.group(1)
            if m.group(2) and (name,) in self.modules:
                add((), (name,), self.location((), pos))
            elif name in self.reexports:
                add((), self.reexports[name], self.location((), pos))


def sccs(graph):
    """Tarjan's strongly connected components, iteratively."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def shortest_cycle(graph, comp):
    """One shortest cycle through the smallest module of a component."""
    members = set(comp)
    start = min(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def topological(graph):
    """The nodes of an acyclic graph, each after every node it has an edge to (ties by name)."""
    left = {v: set(ds) for v, ds in graph.items()}
    order = []
    while left:
        ready = sorted(v for v, ds in left.items() if not ds)
        if not ready:
            return None
        for v in ready[:1]:
            order.append(v)
            del left[v]
            for ds in left.values():
                ds.discard(v)
    return order


def check_folders(crate, graph):
    """The folder graph of a module graph (test modules' edges left out): prints the folders'
    order, or every cycle with the module edges that make it; True if there is none."""
    show = crate.display
    folders = {}  # folder -> {folder: [(module, module, location)]}
    for mod, deps in graph.items():
        a = crate.folder_of(mod)
        folders.setdefault(a, {})
        if crate.is_test(mod):
            continue
        for dep, loc in deps.items():
            b = crate.folder_of(dep)
            folders.setdefault(b, {})
            if a != b:
                folders[a].setdefault(b, []).append((mod, dep, loc))
    cycles = [sorted(c) for c in sccs(folders) if len(c) > 1]
    for comp in cycles:
        print(f"  FOLDER CYCLE ({len(comp)} folders): {', '.join(comp)}")
        for a in comp:
            for b in sorted(folders[a]):
                if b not in comp:
                    continue
                for mod, dep, loc in sorted(folders[a][b], key=lambda e: (show(e[0]), show(e[1]))):
                    print(f"      {a} -> {b}: {show(mod)} -> {show(dep)} at {loc}")
    if not cycles:
        order = topological(folders)
        print(f"  ok: folders in order, each importing only folders before it: {', '.join(order)}")
    return not cycles


def check(crate_dir):
    crate = Crate(crate_dir)
    graph = crate.edges()
    show = crate.display
    print(f"{crate.name}:")
    if () in graph and not graph[()] and not any(() in d for d in graph.values()):
        del graph[()]  # lib.rs is only its module list and re-exports: not worth a line
    for mod in sorted(graph, key=show):
        deps = ", ".join(sorted(show(d) for d in graph[mod])) or "(nothing)"
        print(f"  {show(mod)} -> {deps}")
    cycles = [sorted(c, key=show) for c in sccs(graph) if len(c) > 1]
    for comp in cycles:
        names = ", ".join(show(m) for m in comp)
        print(f"  CYCLE ({len(comp)} modules): {names}")
        path = shortest_cycle(graph, comp)
        print("    e.g. " + " -> ".join(show(m) for m in path))
        for a, b in zip(path, path[1:]):
            print(f"      {show(a)} -> {show(b)} at {graph[a][b]}")
        print("    every edge inside the cycle:")
        for a in comp:
            for b in sorted(graph[a], key=show):
                if b in comp:
                    print(f"      {show(a)} -> {show(b)} at {graph[a][b]}")
    if not cycles:
        print(f"  ok: no import cycle among {len(graph)} modules")
    folders_ok = check_folders(crate, graph)
    return not cycles and folders_ok


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    crates = argv or DEFAULT_CRATES
    ok = True
    for name in crates:
        crate_dir = name if os.path.isabs(name) else os.path.join(repo, name)
        if not os.path.isdir(os.path.join(crate_dir, "src")):
            print(f"import-cycles: {name}: no src/ directory (usage: see --help)",
                  file=sys.stderr)
            return 2
        ok = check(crate_dir) and ok
    if not ok:
        print("import-cycles: FAIL: a module (or folder) imports, through others, one that "
              "imports it; move the shared part into a module (or folder) below both")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
