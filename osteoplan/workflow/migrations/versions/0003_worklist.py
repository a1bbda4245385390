"""Worklist and board rules (issue 15): proposer of a decision, one row per board validation (quorum), procedure
type, provisional / final grade of an adverse event.

Existing data: validated decisions get one validation row (their validator, their date); done and scheduled
procedures get their procedure type inferred from the treated site and what was placed
(:func:`osteoplan.workflow.models.infer_procedure_type`); adverse events keep ``grade_status`` NULL (= final,
they were graded when entered). An index on ``procedures.decision_id`` serves the worklist. Columns are only added (no table is rebuilt, so the no-delete triggers of 0001
stay in place); the new table gets its own no-delete trigger.

Revision ID: 0003_worklist
Revises: 0002
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003_worklist"
down_revision = "0002"
branch_labels = None
depends_on = None


def _no_delete_trigger(table: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table}: rows are never deleted, use a soft delete with a reason'); END")
    elif dialect == "postgresql":
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} FOR EACH ROW "
                   f"EXECUTE FUNCTION osteoplan_refuse('use a soft delete with a reason')")


def _backfill() -> None:
    from osteoplan.workflow.models import infer_procedure_type

    bind = op.get_bind()
    now = dt.datetime.now(dt.timezone.utc)
    # one validation row per already validated decision
    rows = bind.execute(sa.text("SELECT id, validated_by_id, validated_at FROM tumour_board_decisions "
                                "WHERE validated_by_id IS NOT NULL AND validated_at IS NOT NULL")).all()
    if rows:
        bind.execute(sa.text("INSERT INTO decision_validations (decision_id, user_id, validated_at, created_at, "
                             "updated_at, version) VALUES (:d, :u, :at, :now, :now, 1)"),
                     [{"d": r[0], "u": r[1], "at": r[2], "now": now} for r in rows])
    # procedure types from site and material
    procs = bind.execute(sa.text(
        "SELECT p.id, l.site_kind, l.site, p.cement_volume_ml, d.decision_type, p.status, "
        "(SELECT COUNT(*) FROM procedure_screws s WHERE s.procedure_id = p.id AND s.deleted_at IS NULL) "
        "FROM procedures p JOIN lesions l ON l.id = p.lesion_id "
        "JOIN tumour_board_decisions d ON d.id = p.decision_id")).all()
    updates = []
    for pid, kind, site, cement, dtype, status, n_screws in procs:
        if status == "done":
            t = infer_procedure_type(kind, site, bool(n_screws), bool(cement))
        else:
            t = infer_procedure_type(kind, site, dtype in ("screw_cement", "screw_alone"),
                                     dtype in ("screw_cement", "cement_alone"))
        updates.append({"t": t, "i": pid})
    if updates:
        bind.execute(sa.text("UPDATE procedures SET procedure_type = :t WHERE id = :i"), updates)


def upgrade() -> None:
    op.create_table(
        "decision_validations",
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.String(length=64), nullable=True),
        sa.Column("deleted_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["decision_id"], ["tumour_board_decisions.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decision_validations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_validations_decision_id"), ["decision_id"], unique=False)
    _no_delete_trigger("decision_validations")
    # plain ADD COLUMN (no table rebuild): the 0001 triggers of these tables are kept
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a column-level REFERENCES without a rebuild
        op.execute("ALTER TABLE tumour_board_decisions ADD COLUMN proposed_by_id INTEGER REFERENCES users (id)")
    else:
        op.add_column("tumour_board_decisions", sa.Column("proposed_by_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_decisions_proposed_by", "tumour_board_decisions", "users", ["proposed_by_id"],
                              ["id"])
    op.add_column("procedures", sa.Column("procedure_type", sa.String(length=30), nullable=True))
    op.create_index("ix_procedures_procedure_type", "procedures", ["procedure_type"], unique=False)
    # the worklist looks up procedures by decision (without it: a full scan per decision, 7 s at 10,000 cases)
    op.create_index("ix_procedures_decision_id", "procedures", ["decision_id"], unique=False)
    op.add_column("adverse_events", sa.Column("grade_status", sa.String(length=12), nullable=True))
    _backfill()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    # SQLite rebuilds a table to drop a column (batch mode), which drops its triggers: put them back after
    for table, col in (("adverse_events", "grade_status"), ("procedures", "procedure_type"),
                       ("tumour_board_decisions", "proposed_by_id")):
        if table == "procedures":
            op.drop_index("ix_procedures_procedure_type", table_name="procedures")
            op.drop_index("ix_procedures_decision_id", table_name="procedures")
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            with op.batch_alter_table(table, recreate="always") as b:
                b.drop_column(col)
            _no_delete_trigger(table)
        else:
            if col == "proposed_by_id":
                op.drop_constraint("fk_decisions_proposed_by", table, type_="foreignkey")
            op.drop_column(table, col)
    op.execute("DROP TRIGGER IF EXISTS decision_validations_no_delete" if dialect == "sqlite"
               else "DROP TRIGGER IF EXISTS decision_validations_no_delete ON decision_validations")
    op.drop_index("ix_decision_validations_decision_id", table_name="decision_validations")
    op.drop_table("decision_validations")
