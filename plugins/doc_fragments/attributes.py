# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Standard attributes every dbops.admin module declares."""

    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  action_group:
    description: Use C(group/dbops.admin.db) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - dbops.admin.db
'''

    # For report-only modules that never change anything.
    INFO_MODULE = r'''
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: This module never changes anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details: This module never changes anything.
  action_group:
    description: Use C(group/dbops.admin.db) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - dbops.admin.db
'''
