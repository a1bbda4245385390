"""Control-CT checks stored with their procedure (``verifications``, issue 13).

One row per control CT checked against the plan (``osteoplan verify``): stage, tip, distance and angle to the
planned path, the post-operative figures (entry / tip / angle error, outside-cortex excursion, breach grade and
its source), the registration quality figure, the instrument, who and when. A new table only; it gets the
no-delete trigger of every clinical table (soft delete with a reason).

Revision ID: 0006_verifications
Revises: 0005_plan_versions
Create Date: 2026-12-06 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_verifications"
down_revision = "0005_plan_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.Column("saved_plan_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("control_source", sa.String(length=20), nullable=True),
        sa.Column("control_series_uid", sa.String(length=64), nullable=True),
        sa.Column("tip_lps_mm", sa.JSON(), nullable=False),
        sa.Column("tip_to_plan_mm", sa.Float(), nullable=False),
        sa.Column("angle_to_plan_deg", sa.Float(), nullable=False),
        sa.Column("tip_to_target_mm", sa.Float(), nullable=True),
        sa.Column("lateral_offset_at_target_mm", sa.Float(), nullable=True),
        sa.Column("entry_error_mm", sa.Float(), nullable=True),
        sa.Column("tip_error_mm", sa.Float(), nullable=True),
        sa.Column("angle_error_deg", sa.Float(), nullable=True),
        sa.Column("outside_cortex_mm", sa.Float(), nullable=True),
        sa.Column("outside_cortex_where", sa.String(length=200), nullable=True),
        sa.Column("breach_grade", sa.String(length=2), nullable=True),
        sa.Column("breach_grade_source", sa.Text(), nullable=True),
        sa.Column("breach_note", sa.Text(), nullable=True),
        sa.Column("registration_residual_median_mm", sa.Float(), nullable=False),
        sa.Column("registration_surface_overlap", sa.Float(), nullable=True),
        sa.Column("instrument_diameter_mm", sa.Float(), nullable=True),
        sa.Column("instrument_length_mm", sa.Float(), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("measured_by", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.String(length=64), nullable=True),
        sa.Column("deleted_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["plan_jobs.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["procedure_id"], ["procedures.id"]),
        sa.ForeignKeyConstraint(["saved_plan_id"], ["saved_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifications_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_verifications_procedure_id"), ["procedure_id"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER verifications_no_delete BEFORE DELETE ON verifications "
                   "BEGIN SELECT RAISE(ABORT, 'verifications: rows are never deleted, use a soft delete with a "
                   "reason'); END")
    elif dialect == "postgresql":
        op.execute("CREATE TRIGGER verifications_no_delete BEFORE DELETE ON verifications FOR EACH ROW "
                   "EXECUTE FUNCTION osteoplan_refuse('use a soft delete with a reason')")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS verifications_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS verifications_no_delete ON verifications")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifications_procedure_id"))
        batch_op.drop_index(batch_op.f("ix_verifications_patient_id"))
    op.drop_table("verifications")
