# -*- coding: utf-8 -*-
"""Statement text read back from a server: the literals of statements that carry a secret are masked."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._statement_text import MASK, mask_statement_secrets


@pytest.mark.parametrize('text, engine, expected', [
    ("CREATE ROLE app LOGIN PASSWORD 'S3cret-''quoted''-1'", 'postgresql', "CREATE ROLE app LOGIN PASSWORD '%s'" % MASK),
    ("ALTER ROLE app ENCRYPTED PASSWORD E'a\\'b'", 'postgresql', "ALTER ROLE app ENCRYPTED PASSWORD '%s'" % MASK),
    ('ALTER ROLE app PASSWORD $pw$S3cret$pw$ VALID UNTIL $$2030-01-01$$', 'postgresql',
     "ALTER ROLE app PASSWORD '%s' VALID UNTIL '%s'" % (MASK, MASK)),
    ("CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'S3cret')", 'postgresql',
     "CREATE USER MAPPING FOR app SERVER s OPTIONS (user '%s', password '%s')" % (MASK, MASK)),
    ("SELECT dblink_connect('host=db password=S3cret')", 'postgresql', "SELECT dblink_connect('%s')" % MASK),
    ("CREATE USER app IDENTIFIED BY 'S3cret'", 'mysql', "CREATE USER app IDENTIFIED BY '%s'" % MASK),
    ('SET PASSWORD FOR app = PASSWORD("S3cret")', 'mysql', "SET PASSWORD FOR app = PASSWORD('%s')" % MASK),
    ("CHANGE MASTER TO MASTER_HOST='db1', MASTER_PASSWORD='S3cr", 'mysql',   # cut by the server: to the end
     "CHANGE MASTER TO MASTER_HOST='%s', MASTER_PASSWORD='%s'" % (MASK, MASK)),
    (b"ALTER USER app IDENTIFIED BY 'S3cret'", 'mysql', "ALTER USER app IDENTIFIED BY '%s'" % MASK),
    # statements without a secret are returned as they are
    ("SELECT * FROM t WHERE name = 'x' AND note = \"y\"", 'mysql', "SELECT * FROM t WHERE name = 'x' AND note = \"y\""),
    ('SELECT pg_sleep($1)', 'postgresql', 'SELECT pg_sleep($1)'),
    (None, 'postgresql', None),
    ('', 'mysql', ''),
])
def test_literals_of_secret_statements_are_masked(text, engine, expected):
    assert mask_statement_secrets(text, engine) == expected


def test_no_secret_survives_in_any_literal_form():
    for text in ("CREATE ROLE r PASSWORD 'Zq9-secret'", "CREATE ROLE r PASSWORD $q$Zq9-secret$q$",
                 "CREATE USER u IDENTIFIED BY \"Zq9-secret\"", "GRANT x TO u IDENTIFIED BY 'Zq9-secret"):
        assert 'Zq9-secret' not in mask_statement_secrets(text, 'mysql' if 'USER' in text else 'postgresql')
