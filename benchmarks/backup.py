#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Backup benchmark: db_backup against the community modules and the bare tools.

PostgreSQL half (this file): a throw-away PostgreSQL filled with ``pgbench -i -s 70`` (about 1 GB):

- logical: db_backup method=logical (jobs 2, zstd) against community.postgresql.postgresql_db
  state=dump (plain ``.sql``, its default, the strict comparison; and once ``.sql.gz``). Both sides run the same way, as bare module processes
  (arguments in a JSON file, ``python <module> args.json`` as Ansible's local execution does): no
  ansible CLI start-up on either side, so the times compare the modules' own work;
- physical: db_backup method=physical (plain; pg_verifybackup of every file against the server's manifest
  checksums, our SHA-256 of every file in the catalog, synced) against a bare
  ``pg_basebackup -X stream -c fast`` run in the same script;
- the restore drills (db_restore state=verified) of both backups: RTO.

Prints time, size, MB/s (database size / time) and the ratios; the targets are logical >= 1.5x
faster with a smaller file, physical within 1.15x of the bare tool.
The MariaDB half is benchmarks/backup_mariadb.py (run it with ``--mariadb``).

    .venv/bin/python benchmarks/backup.py [--scale 70] [--repeat N] [--only physical] [--no-drill] [--mariadb]

The community side runs from benchmarks/.work/venv (``ansible`` + ``psycopg2-binary``), created when missing, as
``benchmarks/.work/venv/bin/python -m ansible_collections.community.postgresql.plugins.modules.postgresql_db args.json``.
The load average is printed before and after each half: on a busy machine the ratios mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import modrun  # noqa: E402
from servers import PostgresServer, make_workdir  # noqa: E402

WORK = os.path.join(HERE, '.work')
VENV = os.path.join(WORK, 'venv')


def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def timed(fn):
    start = time.monotonic()
    out = fn()
    return time.monotonic() - start, out


def loadavg():
    return ' '.join('%.1f' % x for x in os.getloadavg())


def drop_caches():
    """Same starting point for every run: dirty pages written (the page cache is shared with others: kept)."""
    subprocess.run(['sync'], check=False)


def ensure_venv(*packages):
    """benchmarks/.work/venv with ansible and the drivers the community modules need; created when missing."""
    python = os.path.join(VENV, 'bin', 'python')
    if not os.path.exists(os.path.join(VENV, 'bin', 'ansible')):
        print('# creating %s (ansible, %s) ...' % (VENV, ', '.join(packages)), flush=True)
        subprocess.run([sys.executable, '-m', 'venv', VENV], check=True)
        subprocess.run([python, '-m', 'pip', 'install', '-q', 'ansible'] + list(packages), check=True)
    return python


def run_bare_module(python, module, args):
    """Run an Ansible module as a bare process, exactly like db_backup (tests/integration/modrun.py):
    arguments in a JSON file, ``python -m <module> file.json``. No ansible CLI start-up on either side,
    so the times compare the modules' own work. Returns the result; RuntimeError when it failed."""
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=False, _ansible_diff=False)}, f)
        argsfile = f.name
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    try:
        proc = subprocess.run([python, '-m', module, argsfile], capture_output=True, text=True, env=env, check=False)
    finally:
        os.unlink(argsfile)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {'failed': True, 'msg': 'module printed no JSON'}
    if proc.returncode != 0 or result.get('failed'):
        raise RuntimeError('%s failed: %s %s' % (module.rsplit('.', 1)[-1], result.get('msg'), proc.stderr[-1500:]))
    return result


def community_dump(server, target):
    """community.postgresql.postgresql_db state=dump, as a bare module process (run_bare_module)."""
    python = ensure_venv('psycopg2-binary')
    run_bare_module(python, 'ansible_collections.community.postgresql.plugins.modules.postgresql_db',
                    {'name': 'bench', 'state': 'dump', 'target': target, 'login_host': '127.0.0.1',
                     'login_port': server.port, 'login_user': 'postgres', 'login_password': server.password})
    return target


def bare_basebackup(server, target):
    argv = ['runuser', '-u', 'postgres', '--', server.bin('pg_basebackup'), '-D', target, '-X', 'stream', '-c', 'fast',
            '-h', '127.0.0.1', '-p', str(server.port), '-U', 'postgres']
    subprocess.run(argv, check=True, capture_output=True, env=dict(os.environ, PGPASSWORD=server.password))
    return target


def db_backup(server, repo, **kwargs):
    args = dict(server.conn, repo=repo)
    args.update(kwargs)
    res = modrun.run_module('db_backup', args, timeout=3600)
    if res['failed']:
        raise RuntimeError('db_backup failed: %s' % res.get('msg'))
    return res


def db_restore_drill(server, repo, backup_id):
    res = modrun.run_module('db_restore', dict(server.conn, repo=repo, backup_id=backup_id, state='verified', jobs=2),
                            timeout=3600)
    if res['failed']:
        raise RuntimeError('restore drill failed: %s' % res.get('msg'))
    return res


def row(label, seconds, size, db_bytes):
    return {'what': label, 'seconds': round(seconds, 2), 'size_mb': round(size / 1e6, 1),
            'mb_per_s': round(db_bytes / 1e6 / seconds, 1)}


def print_table(title, rows):
    print('\n' + title)
    print('%-58s %10s %10s %10s' % ('', 'seconds', 'size MB', 'MB/s'))
    for r in rows:
        print('%-58s %10.2f %10.1f %10.1f' % (r['what'], r['seconds'], r['size_mb'], r['mb_per_s']))


def bench_postgresql(scale, repeat=2, only=None, drill=True):
    work = make_workdir('dbops-bench-pg-', 'postgres')
    server = PostgresServer(settings={'wal_level': 'replica', 'max_wal_size': "'2GB'"}).init().start()
    results = {}
    try:
        server.psql('CREATE DATABASE bench')
        t, _ = timed(lambda: subprocess.run(
            ['runuser', '-u', 'postgres', '--', server.bin('pgbench'), '-i', '-q', '-s', str(scale), '-h',
             server.socket_dir, '-p', str(server.port), '-U', 'postgres', 'bench'], check=True, capture_output=True))
        server.psql('CHECKPOINT')
        db_bytes = int(server.psql("SELECT pg_database_size('bench')"))
        print('PostgreSQL %s, pgbench scale %d: database bench = %.1f MB (filled in %.0f s); load average %s on %d CPUs'
              % (server.psql('SHOW server_version'), scale, db_bytes / 1e6, t,
                 ' '.join('%.1f' % x for x in os.getloadavg()), os.cpu_count()))
        results['database_bytes'] = db_bytes

        repo = os.path.join(work, 'repo')
        logical_id = physical_id = None
        if only in (None, 'logical'):
            # logical: alternate the two, best of `repeat` each (the machine is shared: the best run is the
            # least disturbed one); every time is printed
            times_ours, times_comm = [], []
            # one untimed run of each first: whichever side ran first would otherwise pay the cold start
            # (catalog caches, the table's pages) in its first timed run
            db_backup(server, os.path.join(work, 'warmup'), databases=['bench'], jobs=2, compression='zstd')
            shutil.rmtree(os.path.join(work, 'warmup'), ignore_errors=True)
            community_dump(server, os.path.join(work, 'warmup.sql'))
            os.unlink(os.path.join(work, 'warmup.sql'))
            for _ in range(repeat):
                drop_caches()
                t, res = timed(lambda: db_backup(server, repo, databases=['bench'], jobs=2, compression='zstd'))
                times_ours.append(t)
                logical_id = res['backup']['id']
                size_ours = res['backup']['size_bytes']
                target = os.path.join(work, 'community.sql')
                drop_caches()
                t, _ = timed(lambda target=target: community_dump(server, target))
                times_comm.append(t)
                size_comm = du(target)
                os.unlink(target)
            t_ours, t_comm = min(times_ours), min(times_comm)
            print('logical runs (s): community %s; db_backup %s' % (
                ', '.join('%.2f' % t for t in times_comm), ', '.join('%.2f' % t for t in times_ours)))
            logical = [row('community.postgresql.postgresql_db state=dump (.sql)', t_comm, size_comm, db_bytes),
                       row('dbops.admin.db_backup logical jobs=2 zstd (verified)', t_ours, size_ours, db_bytes)]
            print_table('logical backup of %.0f MB (best of %d)' % (db_bytes / 1e6, repeat), logical)
            speedup = t_comm / t_ours
            median_speedup = statistics.median(times_comm) / statistics.median(times_ours)
            ratio = size_comm / size_ours
            print('db_backup is %.2fx faster best-to-best, %.2fx median-to-median (target >= 1.5x); its files are '
                  '%.1fx smaller (target: smaller); load average now %s' % (speedup, median_speedup, ratio, loadavg()))
            results['logical'] = {'rows': logical, 'speedup': round(speedup, 2), 'median_speedup': round(median_speedup, 2),
                                  'size_ratio': round(ratio, 2), 'runs_community': times_comm, 'runs_db_backup': times_ours}
            # the community module's compressed dump (target .sql.gz: pg_dump | gzip), once, for the file size side
            target = os.path.join(work, 'community.sql.gz')
            drop_caches()
            t_gz, _ = timed(lambda target=target: community_dump(server, target))
            size_gz = du(target)
            os.unlink(target)
            print('community.postgresql.postgresql_db state=dump (.sql.gz) %.2f s, %.1f MB -> db_backup logical is %.2fx '
                  'faster (median), %.1fx smaller' % (t_gz, size_gz / 1e6, t_gz / statistics.median(times_ours),
                                                      size_gz / size_ours))
            results['logical']['community_gz'] = {'seconds': round(t_gz, 2), 'size_mb': round(size_gz / 1e6, 1)}

        if only in (None, 'physical'):
            # physical
            times_bare, times_phys = [], []
            for _ in range(repeat):
                bare = os.path.join(work, 'bare')
                drop_caches()
                t, _ = timed(lambda bare=bare: bare_basebackup(server, bare))
                times_bare.append(t)
                size_bare = du(bare)
                shutil.rmtree(bare)
                drop_caches()
                t, res = timed(lambda: db_backup(server, repo, method='physical', type='full'))
                times_phys.append(t)
                physical_id = res['backup']['id']
            t_bare, t_phys = min(times_bare), min(times_phys)
            print('physical runs (s): bare %s; db_backup %s' % (
                ', '.join('%.2f' % t for t in times_bare), ', '.join('%.2f' % t for t in times_phys)))
            physical = [row('bare pg_basebackup -Fp -X stream -c fast', t_bare, size_bare, db_bytes),
                        row('db_backup physical (SHA-256 catalog, verified, synced)', t_phys,
                            res['backup']['size_bytes'], db_bytes)]
            print_table('physical backup (best of %d)' % repeat, physical)
            factor = t_phys / t_bare
            median_factor = statistics.median(times_phys) / statistics.median(times_bare)
            print('db_backup physical takes %.2fx the bare tool\'s time best-to-best, %.2fx median-to-median '
                  '(target <= 1.15x); load average now %s' % (factor, median_factor, loadavg()))
            results['physical'] = {'rows': physical, 'factor': round(factor, 2), 'median_factor': round(median_factor, 2),
                                   'runs_bare': times_bare, 'runs_db_backup': times_phys}

        # restore drills
        drills = {}
        for label, backup_id in (('physical', physical_id), ('logical', logical_id)):
            if backup_id is None or not drill:
                continue
            drop_caches()
            t, res = timed(lambda b=backup_id: db_restore_drill(server, repo, b))
            drills[label] = {'rto_seconds': res['rto_seconds'], 'total_seconds': round(t, 2),
                             'rows_restored': res['rows_restored'], 'tables': len(res['tables']),
                             'result': res['result']}
            print('restore drill of the %s backup: %s, RTO %.1f s (whole drill %.1f s), %d rows in %d tables'
                  % (label, res['result'], res['rto_seconds'], t, res['rows_restored'], len(res['tables'])))
        results['drills'] = drills
    finally:
        server.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scale', type=int, default=70)
    parser.add_argument('--repeat', type=int, default=2, help='runs of each side, best kept (default 2)')
    parser.add_argument('--only', choices=('logical', 'physical'),
                        help='run one half only (and its restore drill unless --no-drill)')
    parser.add_argument('--no-drill', action='store_true', help='skip the restore drills')
    parser.add_argument('--mariadb', action='store_true', help='run benchmarks/backup_mariadb.py afterwards')
    opts = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    results = {'postgresql': bench_postgresql(opts.scale, max(opts.repeat, 1), opts.only, not opts.no_drill)}
    with open(os.path.join(WORK, 'backup_postgresql.json'), 'w') as f:
        json.dump(results, f, indent=2)
    if opts.mariadb:
        subprocess.run([sys.executable, os.path.join(HERE, 'backup_mariadb.py')], check=False)


if __name__ == '__main__':
    main()
