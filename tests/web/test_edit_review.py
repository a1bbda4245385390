"""Edit forms: optional text can be cleared, required fields get a clear message (review of issue 7)."""

from __future__ import annotations

import re

from .conftest import csrf_of, make_case


def _version(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.text[:300]
    return int(re.search(r'name="version" value="(\d+)"', r.text).group(1))


def test_edit_form_clears_free_text_and_names_required_fields(engine, client_for, api_for):
    ids = make_case(engine, through="validated")
    board = client_for("tumour_board")
    url = f"/cases/{ids['case']}/decisions/{ids['decision']}/edit"
    v = _version(board, url)
    form = {"csrf_token": csrf_of(board), "version": v, "question": "consolidate?", "decision_type": "screw_cement",
            "justification": "fracture risk"}
    assert board.post(url, data=form, follow_redirects=False).status_code == 303
    # clearing the optional justification is saved (was silently ignored before)
    r = board.post(url, data={**form, "version": v + 1, "justification": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    dec = api_for("radiologist").get(f"/api/cases/{ids['case']}").json()["decisions"][0]
    assert (dec["justification"], dec["version"]) == ("", v + 2)
    # clearing the required question: the form again, 422, naming the field; not a 409 conflict
    r = board.post(url, data={**form, "version": v + 2, "question": ""})
    assert r.status_code == 422
    assert "Question" in r.text and "required" in r.text and "changed by someone else" not in r.text


def test_patient_edit_clears_identity_field_and_refuses_empty_cancer(engine, client_for, api_for):
    ids = make_case(engine, through="patient")
    rad = client_for("radiologist")
    url = f"/cases/{ids['case']}/edit"
    v = _version(rad, url)
    base = {"csrf_token": csrf_of(rad), "version": v, "family_name": "Testname", "given_name": "Alice",
            "birth_date": "", "hospital_id": "H-998877", "sex": "female", "birth_year": "1960", "ecog": "1",
            "karnofsky": "", "primary_cancer": "breast", "date_of_death": ""}
    r = rad.post(url, data={**base, "hospital_id": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    case = api_for("radiologist").get(f"/api/cases/{ids['case']}").json()
    assert case["identity"]["hospital_id"] is None and case["identity"]["family_name"] == "Testname"
    r = rad.post(url, data={**base, "version": v + 1, "primary_cancer": ""})
    assert r.status_code == 422 and "primary cancer" in r.text and "required" in r.text
    assert api_for("radiologist").get(f"/api/cases/{ids['case']}").json()["primary_cancer"] == "breast"
