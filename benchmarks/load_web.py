"""Load test of the web application on loopback: case list and case page with 2,000 cases.

Seeds a registry with the project's demo generator (2,000 fictitious cases spread over 8 years, through
the service layer: every rule checked, audit records written), starts ``uvicorn`` (one process) on
127.0.0.1, and hits it with concurrent ``httpx`` async clients. Each scenario is bounded in count and
time (``--requests`` and ``--seconds``, whichever comes first). Every request of a logged-in user writes
an audit record (committed with SQLite ``synchronous=FULL``), so this measures the real read path.

Reports requests/s, median / p95 / p99 latency and errors (must be 0), and compares in the same run:
1 client vs N concurrent clients, and the HTML page vs the JSON API for the same data (ratio column).

    .venv/bin/python benchmarks/load_web.py [--cases 2000] [--clients 16] [--requests 600] [--seconds 30]
        [--db PATH_OR_URL] [--keep-db]

Pages mode (issue 15): ``--pages`` seeds 10,000 cases (``--cases``) in SQLite and, when ``OSTEOPLAN_TEST_PG_URL``
is set, in that PostgreSQL database too, then prints p50 / p95 latency of each page a coordinator, a radiologist
and a board member use every day: case-list pages (first, deep keyset page, filtered by stage / procedure type /
site / operator / dates) and the worklists (per role, filtered, iCalendar export). ``--pages --cases 60
--requests 5`` is the smoke test run by tests/web/test_load_pages.py.

Without ``--db`` a temporary SQLite file is used; a file from a previous run with enough cases is reused
(``--db /tmp/osteoplan-load.db``) to skip the seeding.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OSTEOPLAN_IDENTITY_KEY", base64.urlsafe_b64encode(b"osteoplan-load-test-identity-key").decode())
sys.path.insert(0, str(REPO))


def seed(url: str, n_cases: int) -> int:
    """Fill the database up to *n_cases* demo cases; returns the number of live cases."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from osteoplan.web import backend
    from osteoplan.workflow import demo
    from osteoplan.workflow.db import session_factory, session_scope
    from osteoplan.workflow.models import Patient

    eng = backend.init_engine(url)
    if eng.dialect.name == "sqlite":
        # seeding only: no fsync per commit (the server measured afterwards keeps the registry's synchronous=FULL)
        from sqlalchemy import event

        event.listen(eng, "connect", lambda conn, _rec: conn.execute("PRAGMA synchronous=OFF"))
        eng.dispose()
    try:
        with Session(eng) as s:
            have = s.scalar(select(func.count()).select_from(Patient)) or 0
        years = 8
        per_year = -(-max(0, n_cases - have) // years)
        t0 = time.perf_counter()
        y0 = time.gmtime().tm_year - years
        i = 0
        while have < n_cases:
            k = min(per_year, n_cases - have)
            with session_scope(session_factory(eng)) as s:
                demo.generate_demo_data(s, n_cases=k, year=y0 + (i % years), seed=1000 + i, rounds=4)
            have += k
            i += 1
            print(f"  seeded {have}/{n_cases} cases ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        with Session(eng) as s:
            return s.scalar(select(func.count()).select_from(Patient))
    finally:
        eng.dispose()


#: Tables copied by :func:`seed_fast`, parents first (saved plans and the audit log are not copied).
CLONED_TABLES = ("patients", "lesions", "tumour_board_meetings", "tumour_board_decisions", "decision_validations",
                 "consultations", "procedures", "procedure_screws", "follow_ups", "adverse_events")


def seed_fast(url: str, n_cases: int, base_cases: int = 1250, years: int = 8) -> int:
    """Fill the database to *n_cases*: *base_cases* demo cases of last year through the service layer (every rule,
    every audit record), then SQL copies of them moved back by whole years of 52 weeks (meetings stay on a
    Tuesday), about ``n_cases / years`` cases per year.

    Why: the service path writes ~3-10 cases/s on a shared 2-core machine (10,000 cases: 20-60 min); the copies
    take seconds. The last year, the one the worklist reads, is entirely service-made; older years are copies
    (same case mix, new ids and codes ``<code>-c<k>``). Returns the number of live cases.
    """
    from sqlalchemy import MetaData, func, select, text
    from sqlalchemy.orm import Session

    from osteoplan.web import backend
    from osteoplan.workflow import demo
    from osteoplan.workflow.db import session_factory, session_scope
    from osteoplan.workflow.models import Patient

    eng = backend.init_engine(url)
    sqlite = eng.dialect.name == "sqlite"
    if sqlite:
        from sqlalchemy import event

        event.listen(eng, "connect", lambda conn, _rec: conn.execute("PRAGMA synchronous=OFF"))
        eng.dispose()
    try:
        with Session(eng) as s:
            have = s.scalar(select(func.count()).select_from(Patient)) or 0
        if have >= n_cases:
            return have
        if have == 0:
            t0 = time.perf_counter()
            with session_scope(session_factory(eng)) as s:
                demo.generate_demo_data(s, n_cases=min(base_cases, n_cases), year=time.gmtime().tm_year - 1,
                                        seed=1000, rounds=4)
            print(f"  {min(base_cases, n_cases)} cases through the service in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr)
            have = min(base_cases, n_cases)
        md = MetaData()
        md.reflect(eng, only=CLONED_TABLES)
        per_year = max(1, n_cases // years)
        with eng.begin() as conn:
            top = {t: conn.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {t}")).scalar() for t in CLONED_TABLES}
            base_n = conn.execute(text("SELECT COUNT(*) FROM patients")).scalar()
            k = 0
            while have < n_cases:
                k += 1
                shift = 364 * max(1, (k * base_n) // per_year)
                take = min(base_n, n_cases - have)
                pmax = conn.execute(text(f"SELECT id FROM patients ORDER BY id LIMIT 1 OFFSET {take - 1}")).scalar()
                for t in CLONED_TABLES:
                    table = md.tables[t]
                    cols, exprs = [], []
                    for c in table.columns:
                        cols.append(c.name)
                        fk = next(iter(c.foreign_keys), None)
                        ref = fk.column.table.name if fk is not None else None
                        if c.name == "id":
                            exprs.append(f"id + {k * top[t]}")
                        elif ref in CLONED_TABLES:
                            exprs.append(f"{c.name} + {k * top[ref]}")
                        elif t == "patients" and c.name == "code":
                            exprs.append(f"code || '-c{k}'")
                        elif c.type.__class__.__name__ in ("DATE", "Date"):
                            exprs.append(f"date({c.name}, '-{shift} days')" if sqlite else f"{c.name} - {shift}")
                        elif c.type.__class__.__name__ in ("DATETIME", "DateTime", "TIMESTAMP"):
                            exprs.append(f"datetime({c.name}, '-{shift} days')" if sqlite
                                         else f"{c.name} - interval '{shift} days'")
                        else:
                            exprs.append(c.name)
                    pat = ("id" if t == "patients" else "patient_id" if "patient_id" in table.c else None)
                    if pat is not None:
                        where = f"WHERE {pat} <= {pmax} AND id <= {top[t]}"
                    elif t == "tumour_board_meetings":
                        where = f"WHERE id <= {top[t]}"
                    elif t == "decision_validations":
                        where = (f"WHERE id <= {top[t]} AND decision_id IN (SELECT id FROM tumour_board_decisions "
                                 f"WHERE patient_id <= {pmax})")
                    else:  # procedure_screws
                        where = (f"WHERE id <= {top[t]} AND procedure_id IN (SELECT id FROM procedures "
                                 f"WHERE patient_id <= {pmax})")
                    conn.execute(text(f"INSERT INTO {t} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {t} "
                                      f"{where}"))
                have += take
                print(f"  copied to {have}/{n_cases} cases (moved back {shift} days)", file=sys.stderr)
            if not sqlite:  # the copies took ids beyond the sequences: move them on
                for t in CLONED_TABLES:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                      f"(SELECT MAX(id) FROM {t}))"))
        with Session(eng) as s:
            return s.scalar(select(func.count()).select_from(Patient))
    finally:
        eng.dispose()


def compare_list_queries(url: str, repeats: int = 15) -> list[tuple[str, float, float]]:
    """In-process timing of one case-list page: the eager-loaded reference (every child table loaded as ORM
    objects, then ``case_summary``) vs ``service.list_cases`` (narrow column queries). Returns
    ``(label, reference_ms, list_cases_ms)`` medians; both give the same rows (tests/workflow/test_list_cases.py)."""
    from sqlalchemy import select

    from osteoplan.workflow import models as m
    from osteoplan.workflow import service as sv
    from osteoplan.workflow.db import make_engine, session_factory

    eng = make_engine(url)
    factory = session_factory(eng)

    def reference(s, actor, offset, stage=None):
        pseudo = not sv.sees_identity(actor)
        q = sv._case_query().where(m.Patient.deleted_at.is_(None)).order_by(m.Patient.id.desc())
        if stage:
            rows = [sv.case_summary(p, pseudo) for p in s.scalars(q)]
            return [r for r in rows if r["stage"] == stage][offset:offset + 50]
        return [sv.case_summary(p, pseudo) for p in s.scalars(q.limit(50).offset(offset))]

    def med(fn, role):
        ts = []
        for _ in range(repeats):
            with factory() as s:
                actor = s.scalar(select(m.User).where(m.User.role == role, m.User.deleted_at.is_(None)))
                t0 = time.perf_counter()
                fn(s, actor)
                ts.append(time.perf_counter() - t0)
                s.rollback()
        return statistics.median(ts) * 1000

    out = []
    for label, role, offset, stage in (("page 1, radiologist", "radiologist", 0, None),
                                       ("page 1, research", "research", 0, None),
                                       ("page 20, radiologist", "radiologist", 950, None),
                                       ("stage=followed, radiologist", "radiologist", 0, "followed")):
        ref = med(lambda s, a: reference(s, a, offset, stage), role)
        new = med(lambda s, a: sv.list_cases(s, a, offset=offset, stage=stage), role)
        out.append((label, ref, new))
    eng.dispose()
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int) -> subprocess.Popen:
    import httpx

    env = dict(os.environ, OSTEOPLAN_WEB_DB_URL=url, OSTEOPLAN_WEB_SECRET="load-test-" + "z" * 40)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "osteoplan.web.asgi:app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                            env=env, cwd=str(REPO))
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


async def run_scenario(base: str, token: str, make_path, clients: int, max_requests: int, max_seconds: float) -> dict:
    """*clients* concurrent loops issuing GET make_path(rng) until the count or time bound is hit."""
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds
    lock = asyncio.Lock()

    async def worker(seed: int):
        nonlocal issued
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            while True:
                async with lock:
                    if issued >= max_requests or time.perf_counter() > deadline:
                        return
                    issued += 1
                path = make_path(rng)
                t0 = time.perf_counter()
                try:
                    r = await c.get(path)
                    ok = r.status_code == 200 and len(r.content) > 200
                    if not ok:
                        errors.append(f"{r.status_code} {path}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__} {path}")
                lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    lat.sort()

    def q(p):
        return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] * 1000 if lat else float("nan")

    return {"n": len(lat), "errors": len(errors), "first_errors": errors[:3], "rps": len(lat) / wall if wall else 0,
            "p50_ms": statistics.median(lat) * 1000 if lat else float("nan"), "p95_ms": q(0.95), "p99_ms": q(0.99)}


def page_scenarios(case_ids: list[int]) -> list[tuple[str, str, object]]:
    """(label, role, path maker) of the pages mode: what the coordinator, radiologist and board open daily."""
    older = sorted(case_ids)
    return [
        ("case list, first page", "coordinator", lambda r: "/cases"),
        ("case list, deep page (keyset)", "coordinator",
         lambda r: f"/cases?before={r.choice(older[: max(1, len(older) // 10)])}&page=150"),
        ("case list, stage=followed", "coordinator", lambda r: "/cases?stage=followed"),
        ("case list, stage=rcp_pending", "coordinator", lambda r: "/cases?stage=rcp_pending"),
        ("case list, type=vertebroplasty + site", "radiologist",
         lambda r: f"/cases?procedure_type=vertebroplasty&site={r.choice(['T8', 'L1', 'T12', 'L3'])}"),
        ("case list, C2 screw, operator", "radiologist", lambda r: "/cases?procedure_type=c2_screw&operator=fellow"),
        ("case list, procedure dates (1 month)", "coordinator",
         lambda r: "/cases?date_from={0}-03-01&date_to={0}-03-31".format(time.gmtime().tm_year - r.randint(1, 7))),
        ("worklist, coordinator", "coordinator", lambda r: "/worklist"),
        ("worklist, coordinator, overdue follow-ups", "coordinator", lambda r: "/worklist?kind=follow_up&overdue=true"),
        ("worklist, radiologist", "radiologist", lambda r: "/worklist"),
        ("worklist, board member", "board", lambda r: "/worklist"),
        ("worklist iCalendar, coordinator", "coordinator", lambda r: "/worklist.ics"),
    ]


def run_pages(url: str, n_cases: int, clients: int, max_requests: int, max_seconds: float,
              base_cases: int = 1250) -> list[tuple]:
    """Seed *url* to *n_cases*, serve it, time every page of :func:`page_scenarios` (1 and *clients* clients)."""
    import httpx

    n = seed_fast(url, n_cases, base_cases=base_cases)
    port = free_port()
    proc = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        tokens = {}
        for user in ("coordinator", "radiologist", "board"):
            r = httpx.post(f"{base}/api/token", json={"username": user, "password": f"{user}-demo"})
            r.raise_for_status()
            tokens[user] = r.json()["access_token"]
        ids = httpx.get(f"{base}/api/cases?limit=500&offset={max(0, n - 500)}",
                        headers={"Authorization": f"Bearer {tokens['coordinator']}"}).json()["items"]
        case_ids = [c["id"] for c in ids] or [1]
        for name, user, fn in page_scenarios(case_ids):
            for c in sorted({1, clients}):
                res = asyncio.run(run_scenario(base, tokens[user], fn, c, max_requests, max_seconds))
                rows.append((name, c, res))
                print(f"  {name:42s} clients={c:3d}  p50 {res['p50_ms']:7.1f} ms  p95 {res['p95_ms']:7.1f} ms  "
                      f"errors {res['errors']}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
    return [(n, rows)]


def main_pages(args) -> int:
    backends = []
    if args.db:
        backends.append(args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}")
    else:
        backends.append(f"sqlite:///{tempfile.mkdtemp(prefix='osteoplan-pages-')}/pages.db")
    if os.environ.get("OSTEOPLAN_TEST_PG_URL") and not args.sqlite_only:
        backends.append(os.environ["OSTEOPLAN_TEST_PG_URL"])
    errors = 0
    for url in backends:
        kind = url.split(":")[0].split("+")[0]
        print(f"seeding {args.cases} cases in {kind} ...", file=sys.stderr)
        [(n, rows)] = run_pages(url, args.cases, args.clients, args.requests, args.seconds, args.base_cases)
        print(f"\nPages with {n} demo cases ({kind}), uvicorn 1 process on loopback, every request audited; "
              f"at most {args.requests} requests / {args.seconds:.0f} s per row\n")
        print("| page | clients | requests | p50 ms | p95 ms | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, c, r in rows:
            print(f"| {name} | {c} | {r['n']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['errors']} |")
            errors += r["errors"]
            if r["first_errors"]:
                print(f"<!-- e.g. {r['first_errors']} -->")
    print(f"total errors: {errors}")
    return 1 if errors else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", action="store_true", help="issue 15: p50/p95 of the case-list and worklist pages")
    ap.add_argument("--sqlite-only", action="store_true", help="pages mode: skip PostgreSQL even if configured")
    ap.add_argument("--base-cases", type=int, default=1250, help="pages mode: cases made through the service "
                    "layer (last year); the rest are SQL copies moved back by whole years")
    ap.add_argument("--cases", type=int, default=None, help="cases to seed (default 2000; 10000 with --pages)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=600, help="max requests per scenario")
    ap.add_argument("--seconds", type=float, default=30.0, help="max seconds per scenario")
    ap.add_argument("--db", default=None, help="SQLite file or database URL (reused if already seeded)")
    args = ap.parse_args(argv)
    if args.pages:
        args.cases = 10000 if args.cases is None else args.cases
        return main_pages(args)
    args.cases = 2000 if args.cases is None else args.cases

    import httpx

    if args.db:
        url = args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='osteoplan-load-')}/load.db"
    print(f"seeding {args.cases} cases ...", file=sys.stderr)
    n = seed(url, args.cases)
    list_rows = compare_list_queries(url)
    port = free_port()
    proc = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        token = httpx.post(f"{base}/api/token", json={"username": "radiologist",
                                                     "password": "radiologist-demo"}).json()["access_token"]
        ids = httpx.get(f"{base}/api/cases?limit=500", headers={"Authorization": f"Bearer {token}"}).json()["items"]
        case_ids = [c["id"] for c in ids]
        pages = -(-n // 50)
        scenarios = [
            ("case list p1 (HTML)", lambda r: "/cases"),
            ("case list random page (HTML)", lambda r: f"/cases?page={r.randint(1, pages)}"),
            ("case list (JSON API)", lambda r: f"/api/cases?limit=50&offset={50 * r.randint(0, pages - 1)}"),
            ("case page (HTML)", lambda r: f"/cases/{r.choice(case_ids)}"),
            ("case (JSON API)", lambda r: f"/api/cases/{r.choice(case_ids)}"),
        ]
        rows = []
        for name, fn in scenarios:
            for clients in (1, args.clients):
                res = asyncio.run(run_scenario(base, token, fn, clients, args.requests, args.seconds))
                rows.append((name, clients, res))
                print(f"  {name:32s} clients={clients:3d}  {res['rps']:7.1f} req/s  p95 {res['p95_ms']:7.1f} ms  "
                      f"errors {res['errors']}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)

    print(f"\nLoad test on loopback: {n} cases in the database ({url.split(':')[0]}), uvicorn 1 process, "
          f"bounded {args.requests} requests / {args.seconds:.0f} s per scenario\n")
    print(f"| scenario | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors | req/s vs 1 client |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    single = {}
    for name, clients, r in rows:
        if clients == 1:
            single[name] = r["rps"]
        ratio = r["rps"] / single[name] if single.get(name) else float("nan")
        print(f"| {name} | {clients} | {r['n']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['errors']} | {ratio:.2f}x |")
    print()
    by = {(nm, c): r for nm, c, r in rows}
    for html, api in (("case list random page (HTML)", "case list (JSON API)"), ("case page (HTML)", "case (JSON API)")):
        h, a = by[(html, args.clients)], by[(api, args.clients)]
        print(f"{html} vs {api} at {args.clients} clients: {h['rps']:.1f} vs {a['rps']:.1f} req/s "
              f"(HTML/JSON = {h['rps'] / a['rps']:.2f}x)")
    print(f"\nCase-list page of 50 in-process ({n} cases, median of 15): eager-loaded ORM reference vs "
          "service.list_cases (narrow queries)\n")
    print("| page | eager-loaded ms | list_cases ms | speed-up |")
    print("|---|---:|---:|---:|")
    for label, ref, new in list_rows:
        print(f"| {label} | {ref:.1f} | {new:.1f} | {ref / new:.2f}x |")
    total_errors = sum(r["errors"] for _, _, r in rows)
    print(f"total errors: {total_errors}")
    if total_errors:
        for _, _, r in rows:
            if r["first_errors"]:
                print("  e.g.", r["first_errors"])
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
