# -*- coding: utf-8 -*-
# Copyright: dbops.admin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to dbops.admin: Postgres engine, maintenance area (mixed into the PostgresEngine class)."""

from __future__ import annotations


class PostgresMaintenance:
    """maintenance methods of the Postgres engine; self is the connected engine."""
