# -*- coding: utf-8 -*-
"""Tables created with DATA DIRECTORY in a MariaDB physical backup: their <db>/<table>.isl files are
found in the prepared copy and rewritten to point under <data_dir>.external, never at the source's
files; what is in the way is refused before anything changes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.dbops.admin.plugins.module_utils._engines import mysql_backup as mb
from ansible_collections.dbops.admin.plugins.module_utils._errors import DbError


def prepared_copy(tmp_path, isl):
    """A prepared copy holding one local table and the given {'<db>/<table>': external path} .isl files."""
    copy = tmp_path / 'work' / 'full'
    (copy / 'shop').mkdir(parents=True)
    (copy / 'shop' / 'local.ibd').write_bytes(b'\0' * 16)
    (copy / 'backup-my.cnf').write_text('[mysqld]\n')
    for name, path in isl.items():
        (copy / os.path.dirname(name)).mkdir(exist_ok=True)
        (copy / (name + '.ibd')).write_bytes(b'\0' * 16)
        (copy / (name + '.isl')).write_text(path)
        os.chmod(copy / (name + '.isl'), 0o640)
    return copy


SOURCE = {'shop/orders': '/srv/big/shop/orders.ibd',
          'my@002ddb/t@0024x': '/mnt/ext/my@002ddb/t@0024x.ibd\n',
          'shop/parts#P#p0': '/srv/big/shop/parts#P#p0.ibd',
          'shop/parts#P#p1': '/srv/fast/shop/parts#P#p1.ibd'}


def test_external_tablespaces_are_found_with_their_table_and_path(tmp_path):
    copy = prepared_copy(tmp_path, SOURCE)
    found = mb.external_tablespaces(str(copy))
    assert [(t['database'], t['table'], t['name'], t['path']) for t in found] == [
        ('my-db', 't$x', 'my@002ddb/t@0024x', '/mnt/ext/my@002ddb/t@0024x.ibd'),
        ('shop', 'orders', 'shop/orders', '/srv/big/shop/orders.ibd'),
        ('shop', 'parts', 'shop/parts#P#p0', '/srv/big/shop/parts#P#p0.ibd'),
        ('shop', 'parts', 'shop/parts#P#p1', '/srv/fast/shop/parts#P#p1.ibd')]
    assert mb.external_tablespaces(str(prepared_copy(tmp_path / 'none', {}))) == []


def test_remap_rewrites_only_the_prepared_copy_under_data_dir_external(tmp_path):
    stored = prepared_copy(tmp_path / 'repo', SOURCE)   # stands for the repository's backup
    before = {p: p.read_bytes() for p in stored.rglob('*') if p.is_file()}
    copy = prepared_copy(tmp_path, SOURCE)
    data_dir = str(tmp_path / 'restored' / 'data')
    mapping = mb.remap_external_tablespaces(str(copy), data_dir, mb.external_tablespaces(str(copy)))
    root = str(tmp_path / 'restored' / 'data.external')
    assert mb.external_root(data_dir + '/') == root
    assert [(m['database'], m['table'], m['from'], m['to']) for m in mapping] == [
        ('my-db', 't$x', '/mnt/ext/my@002ddb/t@0024x.ibd', root + '/my@002ddb/t@0024x.ibd'),
        ('shop', 'orders', '/srv/big/shop/orders.ibd', root + '/shop/orders.ibd'),
        ('shop', 'parts', '/srv/big/shop/parts#P#p0.ibd', root + '/shop/parts#P#p0.ibd'),
        ('shop', 'parts', '/srv/fast/shop/parts#P#p1.ibd', root + '/shop/parts#P#p1.ibd')]
    # the path alone, as InnoDB writes it; the file keeps its mode; no temporary file left
    assert (copy / 'shop' / 'orders.isl').read_text() == root + '/shop/orders.ibd'
    assert stat.S_IMODE(os.stat(copy / 'shop' / 'orders.isl').st_mode) == 0o640
    assert not list(copy.rglob('*.tmp'))
    assert all(t['path'].startswith(root + '/') for t in mb.external_tablespaces(str(copy)))
    assert {p: p.read_bytes() for p in stored.rglob('*') if p.is_file()} == before
    # nothing is created by the rewrite itself
    assert not os.path.exists(root) and not os.path.exists(data_dir)


def test_remap_fails_when_an_isl_still_names_another_place(tmp_path, monkeypatch):
    copy = prepared_copy(tmp_path, {'shop/orders': '/srv/big/shop/orders.ibd'})
    found = mb.external_tablespaces(str(copy))
    # the check after the rewrite reads an .isl that was not rewritten (stands for a failed write)
    monkeypatch.setattr(mb, 'external_tablespaces', lambda directory: found)
    with pytest.raises(DbError) as err:
        mb.remap_external_tablespaces(str(copy), str(tmp_path / 'data'), found)
    assert '/srv/big/shop/orders.ibd' in str(err.value) and 'shop.orders' in str(err.value)


def test_external_root_checks_before_anything_changes(tmp_path):
    copy = prepared_copy(tmp_path, {'shop/orders': '/srv/big/shop/orders.ibd'})
    found = mb.external_tablespaces(str(copy))
    data_dir = str(tmp_path / 'data')
    root = tmp_path / 'data.external'
    # missing or empty: used, nothing to replace
    assert mb.check_external_root(data_dir, False, found) is False
    root.mkdir()
    assert mb.check_external_root(data_dir, True, found) is False
    # someone else's files: refused even with force, naming the tables and their paths; left alone
    (root / 'keep.txt').write_text('x')
    for force in (False, True):
        with pytest.raises(DbError) as err:
            mb.check_external_root(data_dir, force, found)
        text = str(err.value)
        assert str(root) in text and 'shop.orders (/srv/big/shop/orders.ibd)' in text and 'move them away' in text
    # ... but a backup without such tables does not care
    assert mb.check_external_root(data_dir, True, []) is False
    assert (root / 'keep.txt').read_text() == 'x'
    # an earlier restore's directory: force replaces it, without force it is refused
    (root / 'keep.txt').unlink()
    (root / 'shop').mkdir()
    (root / 'shop' / 'orders.ibd').write_bytes(b'old')
    (root / mb.EXTERNAL_MARK).write_text(json.dumps({'data_dir': data_dir}))
    with pytest.raises(DbError) as err:
        mb.check_external_root(data_dir, False, found)
    assert 'set force' in str(err.value)
    assert mb.check_external_root(data_dir, True, found) is True
    assert mb.check_external_root(data_dir, True, []) is True   # replaced with data_dir, even if unused now
    assert mb.check_external_root(data_dir, False, []) is False
    assert (root / 'shop' / 'orders.ibd').read_bytes() == b'old'
    mb._make_external_root(data_dir, True)
    assert sorted(os.listdir(root)) == [mb.EXTERNAL_MARK]
    # a link or a file in the way
    other = tmp_path / 'data2'
    os.symlink('/srv/big', str(other) + '.external')
    with pytest.raises(DbError) as err:
        mb.check_external_root(str(other), True, found)
    assert 'not a directory' in str(err.value)


def test_restore_physical_refuses_before_touching_data_dir(tmp_path, monkeypatch):
    """restore_physical with an external root in the way: data_dir is never created, the source's
    path never written (move-back never runs)."""
    copy = prepared_copy(tmp_path / 'src', {'shop/orders': str(tmp_path / 'source-ext' / 'shop' / 'orders.ibd')})
    ran = []

    def fake_materialize(manifest, path, target, bin_dir=None):
        import shutil
        shutil.copytree(str(copy), target)
        return []

    monkeypatch.setattr(mb, 'materialize', fake_materialize)
    monkeypatch.setattr(mb, 'tool', lambda flavor, role, bin_dir=None: '/bin/true')
    monkeypatch.setattr(mb, 'run_checked', lambda argv, *a, **k: ran.append(argv))
    data_dir = tmp_path / 'restored' / 'data'
    (tmp_path / 'restored' / 'data.external').mkdir(parents=True)
    (tmp_path / 'restored' / 'data.external' / 'other').write_text('x')
    chain = [{'manifest': {'id': 'b1', 'type': 'full', 'details': {'flavor': 'mariadb'}}, 'path': str(tmp_path)}]
    with pytest.raises(DbError) as err:
        mb.restore_physical({'chain': chain, 'data_dir': str(data_dir), 'port': 3399, 'os_user': None})
    assert 'shop.orders' in str(err.value)
    assert not data_dir.exists() and not (tmp_path / 'source-ext').exists()
    assert [a for a in ran if '--move-back' in a] == []
    assert [n for n in os.listdir(tmp_path / 'restored') if n.startswith('.dbops-restore-')] == []


def test_tablespaces_outside_the_data_directory_from_the_servers_list():
    """information_schema's tablespaces (MariaDB INNODB_SYS_TABLESPACES.FILENAME): only a table's file
    outside the data directory is recorded. MySQL 8 records none: it keeps no .isl files, its restore
    remaps nothing (so check mode must predict nothing)."""
    rows = [{'name': 'innodb_system', 'path': 'ibdata1'},
            {'name': 'shop/local', 'path': './shop/local.ibd'},
            {'name': 'shop/inside', 'path': '/var/lib/mysql/shop/inside.ibd'},
            {'name': 'shop/orders', 'path': '/srv/fast/shop/orders.ibd'},
            {'name': 'shop/p#p#p0', 'path': '/srv/fast/shop/p#p#p0.ibd'},
            {'name': 'ts1', 'path': '/srv/general/ts1.ibd'},
            {'name': 'caf@0p/caf@0p@002d1', 'path': '/srv/fast/caf@0p/caf@0p@002d1.ibd'}]
    found = mb.external_tablespaces_recorded(rows, '/var/lib/mysql/')
    assert [(t['database'], t['table'], t['name'], t['path']) for t in found] == [
        ('caf@0p', 'caf@0p-1', 'caf@0p/caf@0p@002d1', '/srv/fast/caf@0p/caf@0p@002d1.ibd'),
        ('shop', 'orders', 'shop/orders', '/srv/fast/shop/orders.ibd'),
        ('shop', 'p', 'shop/p#p#p0', '/srv/fast/shop/p#p#p0.ibd')]
    mysql8 = mb.MysqlBackup.__new__(mb.MysqlBackup)
    mysql8.flavor = 'mysql'
    assert mysql8._external_tablespaces('/var/lib/mysql/') == []


def test_external_plan_refuses_like_the_real_run_and_old_backups_tell_nothing(tmp_path):
    data_dir = str(tmp_path / 'new' / 'data')
    recorded = [{'database': 'shop', 'table': 'orders', 'name': 'shop/orders', 'path': '/srv/fast/shop/orders.ibd'}]
    chain = [{'id': 'f', 'details': {'external_tablespaces': recorded}}]
    assert mb.external_plan(chain, data_dir, False) == [
        {'database': 'shop', 'table': 'orders', 'from': '/srv/fast/shop/orders.ibd',
         'to': os.path.join(data_dir + '.external', 'shop', 'orders.ibd')}]
    assert mb.external_plan([{'id': 'f', 'details': {}}], data_dir, False) is None
    assert mb.external_plan([{'id': 'f', 'details': {'external_tablespaces': []}}], data_dir, False) == []
    os.makedirs(data_dir + '.external')
    (tmp_path / 'new' / 'data.external' / 'keep').write_text('x')
    with pytest.raises(DbError) as planned:
        mb.external_plan(chain, data_dir, True)
    with pytest.raises(DbError) as real:
        mb.check_external_root(data_dir, True, recorded)
    assert str(planned.value) == str(real.value) and 'shop.orders (/srv/fast/shop/orders.ibd)' in str(real.value)
    assert mb.external_plan([{'id': 'f', 'details': {}}], data_dir, True) is None
