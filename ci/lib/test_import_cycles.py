#!/usr/bin/env python3
"""Self-test of ci/lib/import_cycles.py: each case writes a tiny crate, runs the check on it
and asserts its verdict, so a check that silently stops seeing an edge fails here first.

usage: python3 ci/lib/test_import_cycles.py   (stdlib only; run by ci/import-cycles.sh)

The crate: lib.rs declares folders a/ (mod.rs, x.rs) and b/ (mod.rs, y.rs); b::y imports
`crate::a::h` (defined in a/mod.rs), so b comes after a. A case adds one import from a/x.rs
to b/ in some form: a folder back edge a -> b -> a that is no module cycle (a::x -> b::y ->
a), which only the folder check can see.
"""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import import_cycles  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE = {
    "lib.rs": "mod a;\nmod b;\n",
    "a/mod.rs": "pub mod x;\n\npub fn h() {}\n",
    "a/x.rs": "pub fn f() {}\n",
    "b/mod.rs": "pub mod y;\n",
    "b/y.rs": "use crate::a::h;\n\npub fn g() {\n    h();\n}\n\npub struct Thing;\n",
}


def run(files):
    """(exit status, output) of the check on a crate made of BASE overridden by `files`."""
    with tempfile.TemporaryDirectory() as tmp:
        crate = os.path.join(tmp, "tiny")
        for name, text in {**BASE, **files}.items():
            path = os.path.join(crate, "src", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = import_cycles.main([crate])
        return status, out.getvalue()


class FolderCheck(unittest.TestCase):
    def assert_back_edge(self, status, out):
        self.assertEqual(status, 1, out)
        self.assertIn("FOLDER CYCLE (2 folders): a, b", out)
        self.assertIn("a -> b: a::x -> b::y at a/x.rs:1", out)
        self.assertIn("b -> a: b::y -> a at b/y.rs:1", out)
        self.assertNotIn("  CYCLE", out)  # no module cycle: only the folders make one

    def test_one_way_passes_in_order(self):
        status, out = run({})
        self.assertEqual(status, 0, out)
        self.assertIn("folders in order, each importing only folders before it: a, b\n", out)

    def test_use_back_edge_fails(self):
        self.assert_back_edge(*run({"a/x.rs": "use crate::b::y::g;\n\npub fn f() {\n    g();\n}\n"}))

    def test_inline_path_back_edge_fails(self):
        self.assert_back_edge(*run({"a/x.rs": "pub fn f() { crate::b::y::g(); }\n"}))

    def test_cfg_test_module_is_skipped(self):
        status, out = run({"a/x.rs": "pub fn f() {}\n\n#[cfg(test)]\nmod tests {\n"
                                     "    use crate::b::y::g;\n}\n"})
        self.assertEqual(status, 0, out)
        self.assertIn("a::x::tests -> b::y", out)  # still a module edge, only not a folder one

    def test_comment_doc_and_string_are_not_edges(self):
        status, out = run({"a/x.rs": "/// Calls `crate::b::y::g`.\n// use crate::b::y::g;\n"
                                     "pub fn f() -> &'static str {\n"
                                     "    /* crate::b::y::g() */\n"
                                     "    \"crate::b::y::g\"\n}\n"})
        self.assertEqual(status, 0, out)

    def test_root_reexport_back_edge_fails(self):
        status, out = run({
            "lib.rs": "mod a;\nmod b;\n\npub use b::y::Thing;\n",
            "a/x.rs": "use crate::Thing;\n\npub fn f(_: Thing) {}\n",
        })
        self.assert_back_edge(status, out)

    def test_module_cycle_inside_a_folder_fails(self):
        status, out = run({
            "a/mod.rs": "pub mod x;\npub mod z;\n\npub fn h() {}\n",
            "a/x.rs": "use crate::a::z::k;\n\npub fn f() {\n    k();\n}\n",
            "a/z.rs": "use super::x::f;\n\npub fn k() {\n    f();\n}\n",
        })
        self.assertEqual(status, 1, out)
        self.assertIn("CYCLE (2 modules): a::x, a::z", out)
        self.assertNotIn("FOLDER CYCLE", out)

    def test_real_crates_pass(self):
        crates = ["rcu-ctx", "rcu-sys", "rcu-alloc", "rcu-core", "rcu-collections"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = import_cycles.main([os.path.join(REPO, c) for c in crates])
        self.assertEqual(status, 0, out.getvalue())


if __name__ == "__main__":
    unittest.main()
