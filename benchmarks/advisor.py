#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""Benchmark of db_query_advisor on an analytic star schema of its own.

Starts a throw-away PostgreSQL (tests/integration/servers.py), builds a sales fact table of a few
million rows with four dimensions (primary keys only), runs a dozen reporting queries through the
module (as Ansible runs it), builds every suggested index, and prints the workload's estimated
total cost (sum of EXPLAIN total costs) before and after, the ratio, the number of indexes, the
advisor's wall time and, for information, the measured execution time before and after.

Targets: cost after <= 0.75 x before, <= 8 indexes, no suggestion duplicating an existing index
prefix, advisor under 60 s.

    .venv/bin/python benchmarks/advisor.py [--rows 2500000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))

from modrun import run_module  # noqa: E402
from servers import PostgresServer  # noqa: E402

SCHEMA = '''
CREATE TABLE dim_date (date_key int PRIMARY KEY, day date NOT NULL, year int NOT NULL, month int NOT NULL,
                       quarter int NOT NULL, day_of_week int NOT NULL);
INSERT INTO dim_date SELECT n, date '2023-01-01' + n - 1, extract(year FROM date '2023-01-01' + n - 1),
       extract(month FROM date '2023-01-01' + n - 1), extract(quarter FROM date '2023-01-01' + n - 1),
       extract(isodow FROM date '2023-01-01' + n - 1) FROM generate_series(1, 731) n;
CREATE TABLE dim_customer (customer_id int PRIMARY KEY, email text NOT NULL, region text NOT NULL,
                           segment text NOT NULL, signup_date date NOT NULL);
INSERT INTO dim_customer SELECT n, 'customer' || n || '@example.com',
       (ARRAY['north','south','east','west','central','islands','mountains','coast'])[1 + n % 8],
       (ARRAY['consumer','corporate','home_office','small_business'])[1 + (n / 7) % 4],
       date '2020-01-01' + (n * 37) % 1826 FROM generate_series(1, 100000) n;
CREATE TABLE dim_product (product_id int PRIMARY KEY, name text NOT NULL, category text NOT NULL,
                          brand text NOT NULL, list_price numeric(10,2) NOT NULL);
INSERT INTO dim_product SELECT n, 'product ' || n, 'cat_' || (n % 40), 'brand_' || ((n * 13) % 500),
       ((n * 7) % 20000) / 100.0 FROM generate_series(1, 10000) n;
CREATE TABLE dim_store (store_id int PRIMARY KEY, city text NOT NULL, region text NOT NULL,
                        opened date NOT NULL);
INSERT INTO dim_store SELECT n, 'city ' || n, (ARRAY['north','south','east','west'])[1 + n % 4],
       date '2015-01-01' + n * 11 FROM generate_series(1, 200) n;
CREATE TABLE fact_sales (sale_id bigint PRIMARY KEY, date_key int NOT NULL, customer_id int NOT NULL,
                         product_id int NOT NULL, store_id int NOT NULL, quantity int NOT NULL,
                         amount numeric(12,2) NOT NULL, discount numeric(4,2) NOT NULL,
                         status text NOT NULL, sold_at timestamp NOT NULL);
INSERT INTO fact_sales
SELECT n, 1 + (n * %(step)s)::bigint / 86400, 1 + (n * 7919) % 100000, 1 + (n * 104729) % 10000, 1 + (n * 31) % 200,
       1 + n % 5, ((n * 17) % 50000) / 100.0, (n % 4) * 0.05,
       CASE WHEN n % 50 = 0 THEN 'returned' WHEN n % 50 = 1 THEN 'cancelled' ELSE 'completed' END,
       timestamp '2023-01-01' + (n * %(step)s) * interval '1 second'
  FROM generate_series(1::bigint, %(rows)s) n;
'''

WORKLOAD = [
    # a customer's latest purchases
    "SELECT sold_at, amount, product_id FROM fact_sales WHERE customer_id = 4242 ORDER BY sold_at DESC LIMIT 20",
    # one week of daily revenue, the date filtered through the date dimension
    "SELECT d.day, sum(f.amount) FROM fact_sales f JOIN dim_date d ON d.date_key = f.date_key "
    "WHERE d.day BETWEEN '2024-03-01' AND '2024-03-07' GROUP BY d.day ORDER BY d.day",
    # best brands of a category in one week
    "SELECT p.brand, sum(f.amount) AS revenue FROM fact_sales f JOIN dim_product p ON p.product_id = f.product_id "
    "WHERE p.category = 'cat_7' AND f.sold_at >= '2024-05-01' AND f.sold_at < '2024-05-08' "
    "GROUP BY p.brand ORDER BY revenue DESC LIMIT 10",
    # one store, one month
    "SELECT date_trunc('day', sold_at) AS day, count(*), sum(amount) FROM fact_sales "
    "WHERE store_id = 17 AND sold_at >= '2024-06-01' AND sold_at < '2024-07-01' GROUP BY 1 ORDER BY 1",
    # recent returns
    "SELECT count(*), sum(amount) FROM fact_sales WHERE status = 'returned' AND sold_at >= '2024-12-01'",
    # revenue of recently signed-up customers by region
    "SELECT c.region, sum(f.amount) FROM fact_sales f JOIN dim_customer c ON c.customer_id = f.customer_id "
    "WHERE c.signup_date >= '2024-12-25' GROUP BY c.region",
    # biggest tickets of the last days
    "SELECT sale_id, amount, customer_id FROM fact_sales WHERE sold_at >= '2024-12-29' ORDER BY amount DESC LIMIT 50",
    # one product's history
    "SELECT date_key, sum(quantity) FROM fact_sales WHERE product_id = 777 GROUP BY date_key ORDER BY date_key",
    # the latest sales
    "SELECT sale_id, sold_at, amount FROM fact_sales ORDER BY sold_at DESC LIMIT 100",
    # a customer by e-mail
    "SELECT customer_id, region, segment FROM dim_customer WHERE email = 'customer31337@example.com'",
    # one brand's revenue
    "SELECT sum(f.amount) FROM fact_sales f JOIN dim_product p ON p.product_id = f.product_id "
    "WHERE p.brand = 'brand_42'",
    # a customer at a store
    "SELECT count(*) FROM fact_sales WHERE store_id = 3 AND customer_id = 5",
    # the whole year by store region: no index can help, it reads everything
    "SELECT s.region, sum(f.amount) FROM fact_sales f JOIN dim_store s ON s.store_id = f.store_id "
    "WHERE f.sold_at >= '2024-01-01' GROUP BY s.region",
]


def explain_costs(conn, queries):
    out = []
    with conn.cursor() as cur:
        for sql in queries:
            cur.execute('EXPLAIN (FORMAT JSON) ' + sql)
            out.append(float(cur.fetchone()[0][0]['Plan']['Total Cost']))
    return out


def execution_ms(conn, queries):
    out = []
    with conn.cursor() as cur:
        for sql in queries:
            cur.execute('EXPLAIN (ANALYZE, FORMAT JSON) ' + sql)
            out.append(float(cur.fetchone()[0][0]['Execution Time']))
    return out


def existing_indexes(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT c.relname, array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indrelid CROSS JOIN LATERAL unnest(i.indkey::int2[]) "
                    "WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = k.attnum JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' GROUP BY i.indexrelid, c.relname")
        return [(t, list(cols)) for t, cols in cur.fetchall()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=2500000, help='fact rows (default 2.5 million)')
    parser.add_argument('--max-indexes', type=int, default=8)
    parser.add_argument('--keep', action='store_true', help='leave the server running (prints its port)')
    args = parser.parse_args()

    server = PostgresServer(settings={'shared_buffers': "'256MB'", 'maintenance_work_mem': "'256MB'",
                                      'max_wal_size': "'4GB'", 'checkpoint_timeout': "'30min'"}).init().start()
    try:
        server.psql('CREATE DATABASE star')
        conn = server.connect('star')
        started = time.time()
        step = max(1, int(731 * 86400 / args.rows))
        with conn.cursor() as cur:
            cur.execute(SCHEMA.replace('%(rows)s', str(args.rows)).replace('%(step)s', str(step)))
            cur.execute('VACUUM ANALYZE')
        build_s = time.time() - started
        print('built star schema: %d fact rows, 4 dimensions, primary keys only (%.1f s)' % (args.rows, build_s))

        before = explain_costs(conn, WORKLOAD)
        before_ms = execution_ms(conn, WORKLOAD)
        prior = existing_indexes(conn)

        started = time.time()
        result = run_module('db_query_advisor', dict(server.conn, login_db='star', queries=WORKLOAD,
                                                     max_indexes=args.max_indexes, index_hygiene=False))
        advisor_s = time.time() - started
        if result['failed']:
            print('advisor failed: %s\n%s' % (result.get('msg'), result.get('_stderr', '')[-3000:]))
            return 2
        suggestions = result['index_suggestions']
        duplicates = [s for s in suggestions for table, cols in prior
                      if table == s['table'] and cols[:len(s['columns'])] == s['columns']]
        print('advisor: method %s, %d suggestions in %.1f s' % (result['method'], len(suggestions), advisor_s))
        for s in suggestions:
            print('  %-60s cost %10.1f -> %9.1f  queries %s' % (
                s['statement'], s.get('estimated_cost_before') or 0, s.get('estimated_cost_after') or 0,
                s['query_numbers']))

        started = time.time()
        with conn.cursor() as cur:
            for s in suggestions:
                cur.execute(s['statement'])
            cur.execute('ANALYZE')
        index_s = time.time() - started
        after = explain_costs(conn, WORKLOAD)
        after_ms = execution_ms(conn, WORKLOAD)
        conn.close()

        print()
        print('%-4s %14s %14s %10s %10s' % ('q', 'cost before', 'cost after', 'ms before', 'ms after'))
        for i, (b, a, bm, am) in enumerate(zip(before, after, before_ms, after_ms)):
            print('%-4d %14.1f %14.1f %10.1f %10.1f' % (i, b, a, bm, am))
        total_before, total_after = sum(before), sum(after)
        ratio = total_after / total_before
        print()
        print('workload total cost before: %.1f' % total_before)
        print('workload total cost after:  %.1f' % total_after)
        print('ratio after/before:         %.3f  (target <= 0.75)' % ratio)
        print('indexes suggested/built:    %d  (target <= 8; built in %.1f s)' % (len(suggestions), index_s))
        print('duplicating existing prefix: %d  (target 0)' % len(duplicates))
        print('advisor time:               %.1f s  (target < 60 s)' % advisor_s)
        print('measured execution before:  %.1f ms, after: %.1f ms (x%.1f faster)' % (
            sum(before_ms), sum(after_ms), sum(before_ms) / max(sum(after_ms), 0.001)))
        ok = ratio <= 0.75 and len(suggestions) <= 8 and not duplicates and advisor_s < 60
        print('RESULT: %s' % ('PASS' if ok else 'FAIL'))
        if args.keep:
            print('server left running on port %d (%s)' % (server.port, server.workdir))
        return 0 if ok else 1
    finally:
        if not args.keep:
            server.destroy()


if __name__ == '__main__':
    sys.exit(main())
