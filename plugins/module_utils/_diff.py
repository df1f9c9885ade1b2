# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: difference tracker feeding changed, diff and actions."""

from __future__ import annotations

import copy


class DifferenceTracker:
    """Records each difference with its before and after value.

    ``changed``, the ``diff`` return value and the list of actions all come from here,
    so a module never decides them separately.
    """

    def __init__(self):
        self._before = {}
        self._after = {}
        self._differences = []
        self.actions = []

    def add(self, name, before, after, action=None):
        """Record one compared attribute; returns True when it differs."""
        self._before[name] = copy.deepcopy(before)
        self._after[name] = copy.deepcopy(after)
        differs = before != after
        if differs:
            self._differences.append({'name': name, 'before': before, 'after': after})
            if action:
                self.actions.append(action)
        return differs

    def set_state(self, before, after):
        """Record whole-object before/after (for present/absent style changes)."""
        self._before = copy.deepcopy(before) if before is not None else {}
        self._after = copy.deepcopy(after) if after is not None else {}
        if before != after:
            self._differences.append({'name': '__state__', 'before': before, 'after': after})

    def action(self, text):
        self.actions.append(text)

    @property
    def changed(self):
        return bool(self._differences) or bool(self.actions)

    @property
    def differences(self):
        return list(self._differences)

    def diff(self):
        return {'before': self._before, 'after': self._after}
