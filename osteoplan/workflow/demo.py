"""A deterministic demo data set: demo users for every role and a year of fictitious cases.

Everything here is invented (names drawn from a short list of common French names, no real person). Cases
go through the service layer, so they obey every rule and leave audit records (actor ``system``).

Demo accounts (:data:`DEMO_USERS`; password = ``<username>-demo``, e.g. ``radiologist`` / ``radiologist-demo``):

=============  ============  ====================================
username       role          password
=============  ============  ====================================
radiologist    radiologist   radiologist-demo
board          tumour_board  board-demo
coordinator    coordinator   coordinator-demo
admin          admin         admin-demo
research       research      research-demo
=============  ============  ====================================

The distributions (case mix, volumes, pain trajectories, complication rates) are illustrative defaults loosely
shaped on the clinical primer (C2 cement 2-4 mL, Mont'Alverne 2005; hydrodissection 210-230 mL, PMID 33388865;
leaks frequent and mostly harmless; CIRSE grades mostly 1-2); they are NOT published figures.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from osteoplan.workflow import models as m
from osteoplan.workflow import service as sv

#: (username, role, display name); password is f"{username}-demo".
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("radiologist", "radiologist", "Dr Demo Radiologist"),
    ("board", "tumour_board", "Dr Demo Oncologist"),
    ("coordinator", "coordinator", "Demo Coordinator"),
    ("admin", "admin", "Demo Administrator"),
    ("research", "research", "Demo Researcher"),
)

_FAMILY = ("Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
           "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard")
_GIVEN_F = ("Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Monique", "Anne", "Christine")
_GIVEN_M = ("Jean", "Michel", "Philippe", "Alain", "Patrick", "Nicolas", "Christophe", "Pierre", "Daniel")
_CANCERS = (("breast", 24), ("lung", 20), ("prostate", 14), ("myeloma", 10), ("kidney", 9), ("colorectal", 6),
            ("thyroid", 5), ("melanoma", 4), ("unknown primary", 8))
_SPECIALTIES = ("interventional radiology", "medical oncology", "radiation oncology", "spine surgery",
                "orthopaedic surgery", "palliative care", "nuclear medicine")


def demo_password(username: str) -> str:
    """The documented demo password of a demo account."""
    return f"{username}-demo"


def create_demo_users(session: Session, rounds: int = 12) -> dict[str, m.User]:
    """Create the demo accounts that do not exist yet; returns username -> user."""
    out: dict[str, m.User] = {}
    for username, role, display in DEMO_USERS:
        u = sv.get_user(session, username)
        if u is None:
            u = sv.create_user(session, None, {"username": username, "password": demo_password(username),
                                               "role": role, "display_name": display}, rounds=rounds)
        out[username] = u
    return out


def _pick(rng: random.Random, weighted) -> Any:
    items, weights = zip(*weighted)
    return rng.choices(items, weights=weights, k=1)[0]


def _site(rng: random.Random) -> tuple[str, str]:
    """(site_kind, site)"""
    r = rng.random()
    if r < 0.22:
        return "vertebra", "C2"
    if r < 0.30:
        return "vertebra", rng.choice(("C1", "C3", "C5", "C7"))
    if r < 0.62:
        return "vertebra", f"T{rng.randint(4, 12)}"
    if r < 0.80:
        return "vertebra", f"L{rng.randint(1, 5)}"
    if r < 0.84:
        return "vertebra", "S1"
    return "bone", _pick(rng, (("femur", 5), ("humerus", 2), ("acetabulum", 3), ("tibia", 1)))


def _decision(rng: random.Random, kind: str, site: str) -> str:
    r = rng.random()
    if r < 0.07:
        return "radiotherapy"
    if r < 0.11:
        return "surgery"
    if r < 0.14:
        return "watchful_waiting"
    if site == "C2":
        return "screw_cement" if rng.random() < 0.8 else "cement_alone"
    if kind == "bone" and site in ("femur", "humerus", "tibia"):
        return "screw_cement" if rng.random() < 0.7 else "screw_alone"
    if kind == "bone":
        return "cement_alone" if rng.random() < 0.6 else "screw_cement"
    return "cement_alone" if rng.random() < 0.9 else "screw_cement"


def generate_demo_data(session: Session, n_cases: int = 120, year: int | None = None, seed: int = 0,
                       rounds: int = 12, batch: int = 50) -> dict[str, int]:
    """Fill the registry with demo users and *n_cases* fictitious cases referred during *year*.

    Deterministic for a given (n_cases, year, seed) and the same "today" (visits that would fall in the future
    are not recorded). COMMITS every *batch* cases (a small unit of work keeps 2,000 cases fast); the last
    partial batch is flushed, commit it afterwards. ``batch=0``: never commit.

    Parameters
    ----------
    n_cases : int
        Number of cases (patients), each with one lesion and one tumour-board decision.
    year : int, optional
        Year of the tumour-board meetings; default last year (so follow-ups exist).
    seed : int
        Random seed.
    rounds : int
        bcrypt cost of the demo passwords (12; lower it in tests).
    batch : int
        Cases per committed batch (0: no intermediate commit).

    Returns
    -------
    dict
        Counts: cases, decisions, procedures, follow_ups, adverse_events, deaths.
    """
    rng = random.Random(seed)
    today = sv.today()
    year = year or today.year - 1
    users = create_demo_users(session, rounds=rounds)
    board = users["board"]
    proposer_id = users["radiologist"].id  # decisions proposed by the radiologist, validated by the board member
    counts = dict(cases=0, decisions=0, procedures=0, follow_ups=0, adverse_events=0, deaths=0)
    # weekly tumour boards on Tuesdays
    first = dt.date(year, 1, 1)
    tuesdays = [first + dt.timedelta(days=d) for d in range(366)
                if (first + dt.timedelta(days=d)).year == year and (first + dt.timedelta(days=d)).weekday() == 1]
    tuesdays = [t for t in tuesdays if t <= today]
    if not tuesdays:
        raise ValueError(f"no tumour-board date in {year} up to today; choose a past year")
    meetings: dict[dt.date, m.TumourBoardMeeting] = {
        mt.meeting_date: mt for mt in session.scalars(select(m.TumourBoardMeeting).where(
            m.TumourBoardMeeting.meeting_date.in_(tuesdays)))}
    meeting_days = sorted(rng.choice(tuesdays) for _ in range(n_cases))

    meeting_ids: dict[dt.date, int] = {d: mt.id for d, mt in meetings.items()}
    board_id = board.id
    for i, mdate in enumerate(meeting_days):
        if batch and i and i % batch == 0:
            # keep the unit of work small: commit the batch and start from an empty identity map
            session.commit()
            session.expunge_all()
            board = session.get(m.User, board_id)
            meetings = {d: session.get(m.TumourBoardMeeting, mid) for d, mid in meeting_ids.items()}
        if mdate not in meetings:
            specs = ["interventional radiology", "medical oncology", "radiation oncology"]
            specs += rng.sample(_SPECIALTIES[3:], k=rng.randint(1, 3))
            meetings[mdate] = sv.create_meeting(session, None, {"meeting_date": mdate,
                                                                "specialties_present": specs})
            meeting_ids[mdate] = meetings[mdate].id
        sex = rng.choice(("female", "male"))
        cancer = _pick(rng, _CANCERS)
        if cancer == "breast":
            sex = "female" if rng.random() < 0.99 else "male"
        if cancer == "prostate":
            sex = "male"
        byear = rng.randint(year - 88, year - 35)
        bdate = dt.date(byear, rng.randint(1, 12), rng.randint(1, 28))
        given = rng.choice(_GIVEN_F if sex == "female" else _GIVEN_M)
        ecog = _pick(rng, ((0, 10), (1, 35), (2, 30), (3, 20), (4, 5)))
        p = sv.create_patient(session, None, {
            "code": sv._next_code(session, year), "family_name": rng.choice(_FAMILY), "given_name": given,
            "birth_date": bdate, "hospital_id": f"DEMO{rng.randint(100000, 999999)}", "sex": sex,
            "primary_cancer": cancer, "ecog": ecog,
            "karnofsky": {0: 100, 1: 80, 2: 60, 3: 40, 4: 20}[ecog]})
        counts["cases"] += 1
        kind, site = _site(rng)
        ltype = _pick(rng, (("lytic", 6), ("mixed", 3), ("blastic", 1)))
        if cancer == "prostate":
            ltype = "blastic" if rng.random() < 0.5 else "mixed"
        lesion_in: dict[str, Any] = {"patient_id": p.id, "site_kind": kind, "site": site, "lesion_type": ltype,
                                     "ct_series_uids": [f"2.25.{seed}{i:06d}{rng.randint(10**8, 10**9)}"]}
        if kind == "vertebra":
            lesion_in["sins"] = {
                "pain": _pick(rng, (("mechanical", 6), ("occasional", 3), ("none", 1))),
                "alignment": _pick(rng, (("normal", 7), ("deformity", 2), ("subluxation", 1))),
                "collapse": _pick(rng, (("none", 3), ("none-over-50-involved", 3), ("under-50", 3),
                                        ("over-50", 1))),
                "posterolateral": _pick(rng, (("none", 5), ("unilateral", 3), ("bilateral", 2))),
            }
        elif site in ("femur", "humerus", "tibia"):
            msite = "upper-limb" if site == "humerus" else (
                "peritrochanteric" if site == "femur" and rng.random() < 0.6 else "lower-limb")
            lesion_in["mirels"] = {"site": msite, "size": round(rng.uniform(0.2, 0.9), 2),
                                   "pain": _pick(rng, (("mild", 2), ("moderate", 4), ("functional", 4)))}
        lesion = sv.add_lesion(session, None, lesion_in)
        dtype = _decision(rng, kind, site)
        question = f"Management of a {ltype} {site} metastasis ({cancer})?"
        justif = {
            "screw_cement": "High fracture risk; percutaneous screw fixation and cementoplasty for stability and "
                            "pain, then radiotherapy.",
            "screw_alone": "Fixation needed; cement not indicated on this segment.",
            "cement_alone": "Painful lesion without major instability: cementoplasty.",
            "radiotherapy": "Stable lesion, radiosensitive primary: radiotherapy first.",
            "surgery": "Unstable with neurological compromise: open surgery.",
            "watchful_waiting": "Asymptomatic and stable: clinical and imaging surveillance.",
        }[dtype]
        d = sv.record_decision(session, None, {"patient_id": p.id, "lesion_id": lesion.id,
                                               "meeting_id": meetings[mdate].id, "question": question,
                                               "decision_type": dtype, "justification": justif},
                               proposed_by=session.get(m.User, proposer_id))
        counts["decisions"] += 1
        pending = rng.random() < 0.05 or mdate >= today - dt.timedelta(days=2)
        if pending:
            continue
        sv.validate_decision(session, None, d.id, validated_by=board,
                             at=dt.datetime.combine(mdate, dt.time(18, 0), tzinfo=dt.timezone.utc))
        if dtype not in m.CONSOLIDATION_DECISIONS:
            continue
        cdate = mdate + dt.timedelta(days=rng.randint(2, 9))
        pdate = cdate + dt.timedelta(days=rng.randint(1, 14))
        if pdate > today:
            continue
        c2 = site == "C2"
        screw = dtype in ("screw_cement", "screw_alone")
        anaest = "general" if (c2 or screw or kind == "bone") else _pick(rng, (("sedation", 3), ("local", 1),
                                                                               ("general", 1)))
        sv.record_consultation(session, None, {
            "patient_id": p.id, "decision_id": d.id, "consultation_date": cdate, "physician": "Dr Demo Radiologist",
            "benefits_explained": "Pain relief, stabilisation, earlier mobilisation" + (
                ", removal of the cervical collar" if c2 else ""),
            "risks_explained": "Cement leak, infection, bleeding, nerve or vessel injury, failure" + (
                "; vertebral artery and pharynx near the path" if c2 else ""),
            "consent_obtained": True, "anaesthesia": anaest, "info_sheet_language": "fr" if rng.random() < 0.9
            else "en"})
        proc = sv.schedule_procedure(session, None, {"decision_id": d.id, "scheduled_date": pdate,
                                                     "anaesthesia": anaest})
        screws = []
        if screw:
            if c2:
                screws = [{"diameter_mm": rng.choice((3.5, 4.0, 4.5)), "length_mm": float(rng.randint(30, 44))}]
            else:
                screws = [{"diameter_mm": 6.5, "length_mm": float(rng.randint(70, 110))}
                          for _ in range(rng.choice((1, 2, 2, 3)))]
        cement = None
        if dtype != "screw_alone":
            cement = round(rng.uniform(2.0, 4.0) if c2 else (rng.uniform(2.5, 7.0) if kind == "vertebra"
                                                             else rng.uniform(8.0, 25.0)), 1)
        leak = cement is not None and rng.random() < (0.5 if kind == "vertebra" else 0.25)
        leak_sites = []
        if leak:
            leak_sites = rng.sample(("paravertebral venous", "disc", "soft tissue", "epidural", "foraminal"),
                                    k=rng.choice((1, 1, 2)))
        levels = 1 if (c2 or kind == "bone") else _pick(rng, ((1, 8), (2, 2)))
        success = rng.random() < 0.95
        guidance = "CT+fluoroscopy" if c2 else _pick(rng, (("CT", 3), ("fluoroscopy", 4), ("CT+fluoroscopy", 3)))
        sv.log_procedure(session, None, proc.id, {
            "procedure_date": pdate, "operators": ["Dr Demo Radiologist"] + (["Dr Demo Fellow"] if rng.random() < 0.5
                                                                            else []),
            "anaesthesia": anaest, "guidance": guidance, "levels_treated": levels,
            "hydrodissection_volume_ml": float(rng.randint(210, 230)) if c2 else None,
            "trocar": "11G bone trocar" if kind == "vertebra" else "8G bone trocar",
            "guide_pin": screw, "screws": screws, "cement_volume_ml": cement,
            "cement_leak": leak if cement is not None else None, "leak_sites": leak_sites,
            "duration_min": rng.randint(60, 120) if (c2 or screw) else rng.randint(25, 70),
            "dlp_mgy_cm": round(rng.uniform(200, 900) if "CT" in guidance else 0.0, 0),
            "fluoroscopy_time_s": round(rng.uniform(60, 600), 0) if "fluoro" in guidance else None,
            "technical_success": success})
        counts["procedures"] += 1
        stay = _pick(rng, ((1, 6), (2, 2), (3, 1), (5, 1))) if (c2 or screw or kind == "bone") else _pick(
            rng, ((0, 3), (1, 4), (2, 1)))
        discharge = pdate + dt.timedelta(days=stay)
        post: dict[str, Any] = {"discharge_date": discharge if discharge <= today else None}
        if c2:
            collar = pdate + dt.timedelta(days=_pick(rng, ((0, 6), (1, 3), (7, 1))))
            post["collar_removed_date"] = collar if collar <= today else None
        if any(v is not None for v in post.values()):
            sv.record_post_op(session, None, proc.id, post)
        # death
        death = None
        if rng.random() < 0.22:
            death = pdate + dt.timedelta(days=rng.randint(20, 330))
            if death > today:
                death = None
        # follow-ups: pain NRS falls after consolidation (illustrative)
        base = rng.randint(5, 9)
        nrs = {"baseline": base, "day1": max(0, base - rng.randint(2, 6)),
               "1m": max(0, base - rng.randint(3, 7)), "3m": max(0, base - rng.randint(3, 8)),
               "6m": max(0, base - rng.randint(2, 8)), "12m": max(0, base - rng.randint(2, 8))}
        rt = rng.random() < 0.55
        for tp in m.TIMEPOINTS:
            vdate = (pdate - dt.timedelta(days=rng.randint(0, 3)) if tp == "baseline"
                     else pdate + dt.timedelta(days=m.TIMEPOINT_DAYS[tp] + rng.randint(0, 10 if tp != "day1" else 0)))
            if vdate > today or (death and vdate > death):
                break
            if tp not in ("baseline", "day1") and rng.random() < 0.1:
                continue  # missed visit
            opioid = 0.0 if nrs[tp] <= 3 else float(rng.choice((10, 20, 30, 60)))
            sv.record_follow_up(session, None, {
                "procedure_id": proc.id, "timepoint": tp, "visit_date": vdate, "pain_nrs": nrs[tp],
                "analgesics": "paracetamol" + (" + oral morphine" if opioid else ""), "opioid_mme_mg_day": opioid,
                "imaging": "CT" if tp == "1m" else None,
                "imaging_findings": "material in place, no displacement" if tp == "1m" else None,
                "adjuvant_radiotherapy": rt if tp in ("1m", "3m") else None,
                "adjuvant_chemotherapy": (rng.random() < 0.5) if tp == "1m" else None})
            counts["follow_ups"] += 1
        # adverse events
        if rng.random() < 0.12:
            grade = _pick(rng, (("1", 6), ("2", 4), ("3", 2), ("4", 1)))
            desc = {"1": "Asymptomatic cement leak, no treatment", "2": "Transient radicular pain, observation "
                    "overnight", "3": "Symptomatic leak needing steroids and a 3-day stay",
                    "4": "Persistent mild dysphagia" if c2 else "Persistent mild radicular deficit"}[grade]
            classification = "CIRSE 2017"
            if rng.random() < 0.1:
                classification, grade = "SIR", {"1": "A", "2": "B", "3": "C", "4": "D"}[grade]
            edate = pdate + dt.timedelta(days=rng.choice((0, 0, 1, 2)))
            if edate <= today and not (death and edate > death):
                sv.record_adverse_event(session, None, {
                    "procedure_id": proc.id, "event_date": edate, "description": desc,
                    "classification": classification, "grade": grade,
                    "cement_leak_related": "leak" in desc.lower(),
                    # outcome not known yet within a month: the grade is provisional (radiologist's worklist)
                    "grade_status": "provisional" if (today - edate).days < 30 else "final"})
                counts["adverse_events"] += 1
        if death:
            sv.record_death(session, None, p.id, death)
            counts["deaths"] += 1
    session.flush()
    return counts
