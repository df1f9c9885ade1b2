# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Mysql engine, databases area (mixed into the MysqlEngine class)."""

from __future__ import annotations


class MysqlDatabases:
    """databases methods of the Mysql engine; self is the connected engine."""
