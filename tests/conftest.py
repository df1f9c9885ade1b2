# -*- coding: utf-8 -*-
"""Make ``ansible_collections.dbops.admin`` importable from the repository checkout."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.environ.get('DBOPS_COLLECTIONS_ROOT') or os.path.join(REPO, '.build', 'collections')
LINK = os.path.join(ROOT, 'ansible_collections', 'dbops', 'admin')
if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(REPO, LINK)
    except FileExistsError:
        pass
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
