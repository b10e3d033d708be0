"""The parity checker passes on the tree, and notices an option taken away
from any one binding (each edit below removes `fetch_batch` where that
binding declares it)."""

from __future__ import annotations

import unittest
from pathlib import Path
from typing import Callable, Dict
from unittest import mock

import parity

# file name -> (text to remove, what stays in its place)
REMOVALS: Dict[str, Dict[str, tuple[str, str]]] = {
    "python": {"consumer.rs": ('"fetch_batch" =>', '"fetch_batches" =>')},
    "node": {"index.d.ts": ("fetchBatch?:", "fetchBatches?:")},
    "swift": {"types.rs": ("pub fetch_batch: Option<u32>", "pub fetch_batches: Option<u32>")},
    "gateway": {"jetstation.proto": ("uint32 fetch_batch = 13;", "uint32 fetch_batches = 13;")},
}


def editing(file: str, old: str, new: str) -> Callable[[Path], str]:
    original = parity.read

    def read(path: Path) -> str:
        text = original(path)
        return text.replace(old, new) if path.name == file else text

    return read


class ParityTest(unittest.TestCase):
    def test_every_binding_has_the_whole_contract(self) -> None:
        for lang in parity.LANGS:
            with self.subTest(lang=lang):
                self.assertEqual(parity.check(lang), [])

    def test_an_option_removed_from_one_binding_is_reported(self) -> None:
        for lang, edits in REMOVALS.items():
            for file, (old, new) in edits.items():
                with self.subTest(lang=lang, file=file):
                    with mock.patch.object(parity, "read", editing(file, old, new)):
                        missing = parity.check(lang)
                    self.assertTrue(any("ConsumerOptions.fetch_batch" in m for m in missing), missing)
                    others = [other for other in parity.LANGS if other != lang]
                    for other in others:
                        with mock.patch.object(parity, "read", editing(file, old, new)):
                            self.assertEqual(parity.check(other), [], f"{other} is not affected")


if __name__ == "__main__":
    import sys
    import time

    started = time.monotonic()
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"contract: {result.testsRun - failed} passed, {failed} failed in {time.monotonic() - started:.1f}s")
    sys.exit(1 if failed else 0)
