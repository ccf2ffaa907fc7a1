#!/usr/bin/env python3
"""Precompile isobuilder/templates/*.j2 into isobuilder/templates/compiled/ (Jinja's
compile_templates), with the digest of the sources they came from. Run after editing a template;
tests/unit/test_templates.py fails while the compiled copies are stale, and isobuild itself falls
back to the sources then. Run: .venv/bin/python scripts/compile-templates.py"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from isobuilder import render

target = Path(__file__).resolve().parent.parent / "isobuilder" / "templates" / render.COMPILED
shutil.rmtree(target, ignore_errors=True)
target.mkdir()
render.compile_templates(target)
print(f"compiled {len(list(target.glob('*.py')))} templates into {target}", file=sys.stderr)
